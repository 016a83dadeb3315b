package membership

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ImportRecord is one line of an NDJSON import. Kind selects which fields
// apply: "user", "group", "member" or "role".
type ImportRecord struct {
	Kind string `json:"kind"`
	// user, group, role
	ID string `json:"id,omitempty"`
	// user
	Username  string   `json:"username,omitempty"`
	Name      string   `json:"name,omitempty"`
	AvatarURL string   `json:"avatarUrl,omitempty"`
	UTCOffset float64  `json:"utcOffset,omitempty"`
	Type      string   `json:"type,omitempty"` // user: user|bot; group: private|public
	Active    *bool    `json:"active,omitempty"`
	Roles     []string `json:"roles,omitempty"` // user: global roles; member: extra group roles
	// member
	GroupID string `json:"groupId,omitempty"`
	UserID  string `json:"userId,omitempty"`
	Role    string `json:"role,omitempty"`
	// role
	Scope       string `json:"scope,omitempty"`
	Description string `json:"description,omitempty"`
}

// ImportError is a line that was not imported.
type ImportError struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// ImportReport counts what an import did. Importing the same file twice
// creates nothing the second time: every line is unchanged.
type ImportReport struct {
	Lines     int           `json:"lines"`
	Created   int           `json:"created"`
	Updated   int           `json:"updated"`
	Unchanged int           `json:"unchanged"`
	Failed    int           `json:"failed"`
	Errors    []ImportError `json:"errors,omitempty"` // the first MaxImportErrors failures
}

// MaxImportErrors bounds the errors listed in an ImportReport.
const MaxImportErrors = 1000

// MaxImportLine is the longest import line accepted, in bytes.
const MaxImportLine = 64 << 10

const importBatch = 2048

// Import reads NDJSON records from r and stores them. Lines are applied in
// order, so members may follow the users and groups they name in the same
// file. progress, if not nil, is called after every batch. Import returns
// after every stored line is acknowledged by JetStream and applied locally.
func (s *Store) Import(ctx context.Context, r io.Reader, progress func(ImportReport)) (ImportReport, error) {
	im := &importer{
		s:         s,
		users:     map[string]User{},
		usernames: map[string]string{},
		groups:    map[string]Group{},
		members:   map[string]Member{},
		roles:     map[string]Role{},
		now:       s.cfg.Now().UTC(),
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxImportLine)
	lineNo := 0 // physical line number, for error reports
	for sc.Scan() {
		lineNo++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		im.rep.Lines++
		if err := im.add(lineNo, line); err != nil {
			im.fail(lineNo, err)
		}
		if len(im.batch) >= importBatch {
			if err := im.flush(ctx); err != nil {
				return im.rep, err
			}
			if progress != nil {
				progress(im.rep)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			im.fail(lineNo+1, fmt.Errorf("line longer than %d bytes", MaxImportLine))
		} else {
			return im.rep, fmt.Errorf("membership: import: read: %w", err)
		}
	}
	if err := im.flush(ctx); err != nil {
		return im.rep, err
	}
	if err := s.waitApplied(ctx, im.lastRev); err != nil {
		return im.rep, err
	}
	if progress != nil {
		progress(im.rep)
	}
	return im.rep, nil
}

type importer struct {
	s   *Store
	rep ImportReport
	now time.Time
	// state written by this import and not yet visible in the index
	users     map[string]User
	usernames map[string]string
	groups    map[string]Group
	members   map[string]Member
	roles     map[string]Role
	batch     []pending
	lastRev   uint64
}

type pending struct {
	line    int
	key     string
	kind    string // seq kind to assign, "" if Seq is set
	created bool
	value   any
}

func (im *importer) fail(line int, err error) {
	im.rep.Failed++
	if len(im.rep.Errors) < MaxImportErrors {
		im.rep.Errors = append(im.rep.Errors, ImportError{Line: line, Message: err.Error()})
	}
}

func (im *importer) user(id string) (User, bool) {
	if u, ok := im.users[id]; ok {
		return u, true
	}
	return im.s.index.User(id)
}

func (im *importer) group(id string) (Group, bool) {
	if g, ok := im.groups[id]; ok {
		return g, true
	}
	return im.s.index.Group(id)
}

func (im *importer) role(id string) (Role, bool) {
	if r, ok := im.roles[id]; ok {
		return r, true
	}
	return im.s.index.Role(id)
}

func (im *importer) add(line int, raw []byte) error {
	var rec ImportRecord
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return fmt.Errorf("invalid JSON: %v", err)
	}
	if dec.More() {
		return errors.New("invalid JSON: more than one value on the line")
	}
	switch rec.Kind {
	case "user":
		return im.addUser(line, rec)
	case "group":
		return im.addGroup(line, rec)
	case "member":
		return im.addMember(line, rec)
	case "role":
		return im.addRole(line, rec)
	case "":
		return errors.New(`"kind" is required: user, group, member or role`)
	default:
		return fmt.Errorf("unknown kind %q: want user, group, member or role", rec.Kind)
	}
}

func (im *importer) addUser(line int, rec ImportRecord) error {
	if rec.GroupID != "" || rec.UserID != "" || rec.Role != "" || rec.Scope != "" || rec.Description != "" {
		return errors.New("a user record takes id, username, name, avatarUrl, utcOffset, type, active, roles")
	}
	u := User{ID: rec.ID, Username: rec.Username, Name: rec.Name, AvatarURL: rec.AvatarURL,
		UTCOffset: rec.UTCOffset, Type: UserType(rec.Type), Active: true, Roles: rec.Roles}
	if u.Type == "" {
		u.Type = UserTypeUser
	}
	if rec.Active != nil {
		u.Active = *rec.Active
	}
	if err := checkID("id", u.ID); err != nil {
		return err
	}
	if other, ok := im.usernames[u.Username]; ok && other != u.ID {
		return invalid("username", "%q is taken", u.Username)
	}
	for _, r := range u.Roles {
		if role, ok := im.role(r); !ok || role.Scope != ScopeGlobal {
			return invalid("roles", "unknown global role %q", r)
		}
	}
	roles := u.Roles
	u.Roles = nil // roles were checked above against this import too
	if err := im.s.index.validateUser(u); err != nil {
		return err
	}
	u.Roles = roles
	old, exists := im.user(u.ID)
	if exists {
		u.Seq, u.CreatedAt, u.UpdatedAt = old.Seq, old.CreatedAt, old.UpdatedAt
		if sameUser(old, u) {
			im.rep.Unchanged++
			return nil
		}
	} else {
		u.CreatedAt = im.now
	}
	u.UpdatedAt = im.now
	im.users[u.ID] = u
	im.usernames[u.Username] = u.ID
	im.queue(line, userKey(u.ID), "users", !exists, u)
	return nil
}

func sameUser(a, b User) bool {
	return a.Username == b.Username && a.Name == b.Name && a.AvatarURL == b.AvatarURL &&
		a.UTCOffset == b.UTCOffset && a.Type == b.Type && a.Active == b.Active && slices.Equal(a.Roles, b.Roles)
}

func (im *importer) addGroup(line int, rec ImportRecord) error {
	if rec.Username != "" || rec.GroupID != "" || rec.UserID != "" || rec.Role != "" || len(rec.Roles) > 0 || rec.Scope != "" {
		return errors.New("a group record takes id, name, type")
	}
	g := Group{ID: rec.ID, Name: rec.Name, Type: GroupType(rec.Type)}
	if g.Type == "" {
		g.Type = GroupPrivate
	}
	if err := validateGroup(g); err != nil {
		return err
	}
	old, exists := im.group(g.ID)
	if exists {
		g.Seq, g.CreatedAt = old.Seq, old.CreatedAt
		if old.Name == g.Name && old.Type == g.Type {
			im.rep.Unchanged++
			return nil
		}
	} else {
		g.CreatedAt = im.now
	}
	g.UpdatedAt = im.now
	im.groups[g.ID] = g
	im.queue(line, groupKey(g.ID), "groups", !exists, g)
	return nil
}

func (im *importer) addMember(line int, rec ImportRecord) error {
	if rec.ID != "" || rec.Username != "" || rec.Name != "" || rec.Type != "" || rec.Scope != "" {
		return errors.New("a member record takes groupId, userId, role, roles")
	}
	m := Member{GroupID: rec.GroupID, UserID: rec.UserID, Role: MemberRole(rec.Role), Roles: rec.Roles}
	if m.Role == "" {
		m.Role = RoleMember
	}
	if err := checkID("groupId", m.GroupID); err != nil {
		return err
	}
	if err := checkID("userId", m.UserID); err != nil {
		return err
	}
	switch m.Role {
	case RoleOwner, RoleModerator, RoleMember:
	default:
		return invalid("role", "must be %q, %q or %q", RoleOwner, RoleModerator, RoleMember)
	}
	for _, r := range m.Roles {
		if role, ok := im.role(r); !ok || role.Scope != ScopeGroup {
			return invalid("roles", "unknown group role %q", r)
		}
	}
	if _, ok := im.group(m.GroupID); !ok {
		return fmt.Errorf("group %s: %w", m.GroupID, ErrNotFound)
	}
	if _, ok := im.user(m.UserID); !ok {
		return fmt.Errorf("user %s: %w", m.UserID, ErrNotFound)
	}
	key := MemberKey(m.GroupID, m.UserID)
	old, exists := im.members[key]
	if !exists {
		old, exists = im.s.index.Member(m.GroupID, m.UserID)
	}
	if exists {
		m.Seq, m.JoinedAt = old.Seq, old.JoinedAt
		if old.Role == m.Role && slices.Equal(old.Roles, m.Roles) {
			im.rep.Unchanged++
			return nil
		}
	} else {
		m.JoinedAt = im.now
	}
	im.members[key] = m
	im.queue(line, key, "members", !exists, m)
	return nil
}

func (im *importer) addRole(line int, rec ImportRecord) error {
	if rec.Username != "" || rec.GroupID != "" || rec.UserID != "" || rec.Role != "" || len(rec.Roles) > 0 || rec.Type != "" {
		return errors.New("a role record takes id, name, scope, description")
	}
	r := Role{ID: rec.ID, Name: rec.Name, Scope: RoleScope(rec.Scope), Description: rec.Description}
	if err := validateRole(r); err != nil {
		return err
	}
	old, exists := im.role(r.ID)
	if exists && old.Builtin {
		return invalid("id", "role %q is built in", r.ID)
	}
	if exists && old == r {
		im.rep.Unchanged++
		return nil
	}
	im.roles[r.ID] = r
	im.queue(line, roleKey(r.ID), "", !exists, r)
	return nil
}

func (im *importer) queue(line int, key, seqKind string, created bool, v any) {
	if !created {
		seqKind = ""
	}
	im.batch = append(im.batch, pending{line: line, key: key, kind: seqKind, created: created, value: v})
}

// flush assigns numeric aliases to new records, publishes the batch without
// waiting for each acknowledgement, then waits for all of them.
func (im *importer) flush(ctx context.Context) error {
	if len(im.batch) == 0 {
		return nil
	}
	need := map[string]int64{}
	for _, p := range im.batch {
		if p.kind != "" {
			need[p.kind]++
		}
	}
	next := map[string]int64{}
	for kind, n := range need {
		first, err := im.s.reserveSeq(ctx, kind, n)
		if err != nil {
			return err
		}
		next[kind] = first
	}
	js := im.s.cfg.JetStream
	futures := make([]jetstream.PubAckFuture, len(im.batch))
	for i := range im.batch {
		p := &im.batch[i]
		if p.kind != "" {
			seq := next[p.kind]
			next[p.kind]++
			switch v := p.value.(type) {
			case User:
				v.Seq = seq
				im.users[v.ID] = v
				p.value = v
			case Group:
				v.Seq = seq
				im.groups[v.ID] = v
				p.value = v
			case Member:
				v.Seq = seq
				im.members[p.key] = v
				p.value = v
			}
		}
		b, err := json.Marshal(p.value)
		if err != nil {
			return fmt.Errorf("membership: import: encode: %w", err)
		}
		f, err := js.PublishAsync("$KV."+im.s.cfg.Bucket+"."+p.key, b)
		if err != nil {
			return fmt.Errorf("membership: import: publish: %w", err)
		}
		futures[i] = f
	}
	for i, f := range futures {
		p := im.batch[i]
		select {
		case ack := <-f.Ok():
			im.lastRev = max(im.lastRev, ack.Sequence)
			if p.created {
				im.rep.Created++
			} else {
				im.rep.Updated++
			}
		case err := <-f.Err():
			im.fail(p.line, fmt.Errorf("not stored: %v", err))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	im.batch = im.batch[:0]
	// Records now acknowledged become visible in the index shortly; keep
	// the import's own view small by dropping what the index has caught up on.
	if err := im.s.waitApplied(ctx, im.lastRev); err != nil {
		return err
	}
	clear(im.users)
	clear(im.usernames)
	clear(im.groups)
	clear(im.members)
	clear(im.roles)
	return nil
}
