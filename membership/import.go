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
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/presenced/presenced/internal/jskv"
)

// ImportRecord is one line of an NDJSON import. Kind selects which fields
// apply: "user", "group", "member" or "role". Export writes the same records.
type ImportRecord struct {
	Kind string `json:"kind"`
	// user, group, role
	ID string `json:"id,omitempty"`
	// Seq is the numeric alias of a user, group or membership (0: one is
	// assigned). A new record takes the given one, so that a restored
	// backup keeps the numbers vendors address it by; an existing record
	// keeps its own, and a line that names another fails.
	Seq int64 `json:"seq,omitempty"`
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

// MaxImportLine is the longest import line accepted, in bytes, not counting
// its end of line. A longer line fails alone.
const MaxImportLine = 64 << 10

// importBatch is how many lines are read between two flushes: each flush
// stores what the lines changed and reports progress.
const importBatch = 2048

// importBatchTimeout bounds the storing of one batch, so that a store that
// stopped answering ends an import instead of holding it forever.
const importBatchTimeout = 30 * time.Second

// ImportStopError is the error of an import that stopped before the end of
// its input. Lines 1 to Applied were applied: each line stored, unchanged,
// or failed alone and listed in the report. Lines Applied+1 to Read may or
// may not be stored. Lines after Read were not read. Imports are
// idempotent: running the same input again completes it.
type ImportStopError struct {
	Applied int
	Read    int
	// ReadFailed tells a failure to read the input (Err is the reader's
	// error) from a failure to store (Err is the store's or ctx's).
	ReadFailed bool
	// AtEOF is true when the input was read to its end.
	AtEOF bool
	Err   error
}

func (e *ImportStopError) Error() string {
	return "membership: import stopped: " + e.Lines() + ": " + e.Err.Error()
}

func (e *ImportStopError) Unwrap() error { return e.Err }

// Lines says which lines were applied, for people: "lines 1–2048 applied;
// lines 2049–4096 may not be stored; the rest was not read".
func (e *ImportStopError) Lines() string {
	var b strings.Builder
	switch e.Applied {
	case 0:
		b.WriteString("no line applied")
	case 1:
		b.WriteString("line 1 applied")
	default:
		fmt.Fprintf(&b, "lines 1–%d applied", e.Applied)
	}
	switch {
	case e.Read == e.Applied+1:
		fmt.Fprintf(&b, "; line %d may not be stored", e.Read)
	case e.Read > e.Applied:
		fmt.Fprintf(&b, "; lines %d–%d may not be stored", e.Applied+1, e.Read)
	}
	if !e.AtEOF {
		b.WriteString("; the rest was not read")
	}
	return b.String()
}

var errLineTooLong = fmt.Errorf("line longer than %d bytes", MaxImportLine)

// errStoreFirst asks for the lines before this one to be stored before it
// is applied: it rests on a change they make that the index must have
// first (a username one of them renames a user away from).
var errStoreFirst = errors.New("membership: import: store the lines before this one first")

// Import reads NDJSON records from r and stores them. Lines are applied in
// order, so members may follow the users and groups they name in the same
// file. A line that fails (invalid, or longer than MaxImportLine) fails
// alone and is listed in the report. progress, if not nil, is called after
// every batch of lines is stored. Import returns after every stored line is
// acknowledged by JetStream and applied locally; when it cannot go on (r
// fails, the store fails, ctx ends) it returns an *ImportStopError that
// says which lines were applied, with the report so far.
func (s *Store) Import(ctx context.Context, r io.Reader, progress func(ImportReport)) (ImportReport, error) {
	im := &importer{
		s:         s,
		users:     map[string]User{},
		usernames: map[string]string{},
		userSeqs:  map[int64]string{},
		groups:    map[string]Group{},
		groupSeqs: map[int64]string{},
		members:   map[string]Member{},
		roles:     map[string]Role{},
		now:       s.cfg.Now().UTC(),
	}
	// Lines are checked against the index: it must hold what other nodes
	// wrote before the import began, or a line would take their records
	// for new ones and fail to create them.
	cctx, cancel := context.WithTimeout(ctx, importBatchTimeout)
	err := s.CaughtUp(cctx)
	cancel()
	if err != nil {
		return im.rep, im.stop(err)
	}
	lr := lineReader{br: bufio.NewReaderSize(r, 64<<10), max: MaxImportLine}
	for {
		raw, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil && err != errLineTooLong {
			// Apply the lines read whole, then stop: the caller can tell
			// exactly where to go on from.
			if ferr := im.flush(ctx); ferr != nil {
				return im.rep, im.stop(ferr)
			}
			stop := im.stop(err)
			stop.ReadFailed = true
			return im.rep, stop
		}
		im.lineNo++
		if line := bytes.TrimSpace(raw); err != nil || len(line) > 0 {
			im.rep.Lines++
			if err == nil {
				err = im.add(im.lineNo, line)
			}
			if err == errStoreFirst {
				// Store the lines before this one, then apply it.
				im.lineNo--
				if ferr := im.flush(ctx); ferr != nil {
					return im.rep, im.stop(ferr)
				}
				im.lineNo++
				err = im.add(im.lineNo, line)
			}
			if err != nil {
				im.fail(im.lineNo, err)
			}
		}
		if im.lineNo-im.applied >= importBatch {
			if err := im.flush(ctx); err != nil {
				return im.rep, im.stop(err)
			}
			if progress != nil {
				progress(im.rep)
			}
		}
	}
	im.atEOF = true
	if err := im.flush(ctx); err != nil {
		return im.rep, im.stop(err)
	}
	if progress != nil {
		progress(im.rep)
	}
	return im.rep, nil
}

// lineReader splits its input into lines of at most max bytes.
type lineReader struct {
	br   *bufio.Reader
	max  int
	line []byte
}

// next returns the next line, with its end of line. A line longer than max
// is read to its end and answered errLineTooLong. At the end of the input
// it returns io.EOF; a last line without a newline is a line. Any other
// error is the reader's, and the part of a line read before it is dropped:
// that line was not read whole.
func (lr *lineReader) next() ([]byte, error) {
	lr.line = lr.line[:0]
	tooLong := false
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if !tooLong {
			lr.line = append(lr.line, chunk...)
			if len(bytes.TrimRight(lr.line, "\r\n")) > lr.max {
				tooLong = true
				lr.line = lr.line[:0]
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == nil, err == io.EOF && (tooLong || len(lr.line) > 0):
			if tooLong {
				return nil, errLineTooLong
			}
			return lr.line, nil
		default:
			return nil, err
		}
	}
}

type importer struct {
	s   *Store
	rep ImportReport
	now time.Time
	// where the import is in its input, in lines
	lineNo  int  // lines read
	applied int  // lines applied: stored, unchanged or failed alone
	atEOF   bool // the input was read to its end
	// state written by this import and not yet visible in the index
	users     map[string]User
	usernames map[string]string
	userSeqs  map[int64]string // seq → id of the users given a seq by a line
	groups    map[string]Group
	groupSeqs map[int64]string
	members   map[string]Member
	roles     map[string]Role
	batch     []pending
	byKey     map[string]int // key → its write in batch
	lastRev   uint64
}

// pending is the write of one key in a batch: its line, and the later
// lines of the batch that wrote the same key (the last one's value is
// stored).
type pending struct {
	line    int
	more    []int
	key     string
	kind    string // seq kind to assign a number of, "" if none
	raise   string // seq kind to raise to seq, for a new record given its seq
	seq     int64
	created bool
	// rev is the revision the write expects the key to be at: the one the
	// line was checked against (0: the key holds no value). nil: a plain
	// put, as PutRole does.
	rev    *uint64
	value  any
	stored bool // acknowledged
}

// stop is the error that ends an import where it is.
func (im *importer) stop(err error) *ImportStopError {
	return &ImportStopError{Applied: im.applied, Read: im.lineNo, AtEOF: im.atEOF, Err: err}
}

func (im *importer) fail(line int, err error) {
	im.rep.Failed++
	if len(im.rep.Errors) < MaxImportErrors {
		im.rep.Errors = append(im.rep.Errors, ImportError{Line: line, Message: err.Error()})
	}
}

// user returns the user id as this import left it, or as the index has
// it with its revision. A user of the batch has no revision yet: a later
// line that writes it again joins the batch's write.
func (im *importer) user(id string) (User, uint64, bool) {
	if u, ok := im.users[id]; ok {
		return u, 0, true
	}
	return im.s.index.userRev(id)
}

func (im *importer) group(id string) (Group, uint64, bool) {
	if g, ok := im.groups[id]; ok {
		return g, 0, true
	}
	return im.s.index.groupRev(id)
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
		return errors.New("a user record takes id, seq, username, name, avatarUrl, utcOffset, type, active, roles")
	}
	if rec.Seq < 0 {
		return invalid("seq", "must be positive")
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
	if holder, ok := im.s.index.UserByUsername(u.Username); ok && holder.ID != u.ID {
		if mine, ok := im.users[holder.ID]; ok && mine.Username != u.Username {
			return errStoreFirst // the batch renames the holder
		}
	}
	roles := u.Roles
	u.Roles = nil // roles were checked above against this import too
	if err := im.s.index.validateUser(u); err != nil {
		return err
	}
	u.Roles = roles
	old, rev, exists := im.user(u.ID)
	if exists {
		if rec.Seq != 0 && rec.Seq != old.Seq {
			return seqChange("user "+u.ID, old.Seq, rec.Seq)
		}
		u.Seq, u.CreatedAt, u.UpdatedAt = old.Seq, old.CreatedAt, old.UpdatedAt
		if sameUser(old, u) {
			im.rep.Unchanged++
			return nil
		}
	} else {
		if rec.Seq != 0 {
			if err := claimSeq(im.userSeqs, rec.Seq, u.ID, "user", func(seq int64) (string, bool) {
				o, ok := im.s.index.UserBySeq(seq)
				return o.ID, ok
			}); err != nil {
				return err
			}
			u.Seq = rec.Seq
		}
		u.CreatedAt = im.now
	}
	u.UpdatedAt = im.now
	im.users[u.ID] = u
	im.usernames[u.Username] = u.ID
	im.queue(line, userKey(u.ID), "users", !exists, u.Seq, u, &rev)
	return nil
}

// seqChange is the error of a line that gives an existing record another
// numeric alias.
func seqChange(what string, old, seq int64) error {
	if old == 0 {
		return invalid("seq", "%s was created without a seq earlier in this import", what)
	}
	return invalid("seq", "%s has seq %d, not %d: a numeric alias never changes", what, old, seq)
}

func sameUser(a, b User) bool {
	return a.Username == b.Username && a.Name == b.Name && a.AvatarURL == b.AvatarURL &&
		a.UTCOffset == b.UTCOffset && a.Type == b.Type && a.Active == b.Active && slices.Equal(a.Roles, b.Roles)
}

func (im *importer) addGroup(line int, rec ImportRecord) error {
	if rec.Username != "" || rec.GroupID != "" || rec.UserID != "" || rec.Role != "" || len(rec.Roles) > 0 || rec.Scope != "" {
		return errors.New("a group record takes id, seq, name, type")
	}
	if rec.Seq < 0 {
		return invalid("seq", "must be positive")
	}
	g := Group{ID: rec.ID, Name: rec.Name, Type: GroupType(rec.Type)}
	if g.Type == "" {
		g.Type = GroupPrivate
	}
	if err := validateGroup(g); err != nil {
		return err
	}
	old, rev, exists := im.group(g.ID)
	if exists {
		if rec.Seq != 0 && rec.Seq != old.Seq {
			return seqChange("group "+g.ID, old.Seq, rec.Seq)
		}
		g.Seq, g.CreatedAt = old.Seq, old.CreatedAt
		if old.Name == g.Name && old.Type == g.Type {
			im.rep.Unchanged++
			return nil
		}
	} else {
		if rec.Seq != 0 {
			if err := claimSeq(im.groupSeqs, rec.Seq, g.ID, "group", func(seq int64) (string, bool) {
				o, ok := im.s.index.GroupBySeq(seq)
				return o.ID, ok
			}); err != nil {
				return err
			}
			g.Seq = rec.Seq
		}
		g.CreatedAt = im.now
	}
	g.UpdatedAt = im.now
	im.groups[g.ID] = g
	im.queue(line, groupKey(g.ID), "groups", !exists, g.Seq, g, &rev)
	return nil
}

func (im *importer) addMember(line int, rec ImportRecord) error {
	if rec.ID != "" || rec.Username != "" || rec.Name != "" || rec.Type != "" || rec.Scope != "" {
		return errors.New("a member record takes groupId, userId, seq, role, roles")
	}
	if rec.Seq < 0 {
		return invalid("seq", "must be positive")
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
	if _, _, ok := im.group(m.GroupID); !ok {
		return fmt.Errorf("group %s: %w", m.GroupID, ErrNotFound)
	}
	if _, _, ok := im.user(m.UserID); !ok {
		return fmt.Errorf("user %s: %w", m.UserID, ErrNotFound)
	}
	key := MemberKey(m.GroupID, m.UserID)
	old, exists := im.members[key]
	var rev uint64
	if !exists {
		old, rev, exists = im.s.index.memberRev(m.GroupID, m.UserID)
	}
	if exists {
		if rec.Seq != 0 && rec.Seq != old.Seq {
			return seqChange("the membership of "+m.UserID+" in "+m.GroupID, old.Seq, rec.Seq)
		}
		m.Seq, m.JoinedAt = old.Seq, old.JoinedAt
		if old.Role == m.Role && slices.Equal(old.Roles, m.Roles) {
			im.rep.Unchanged++
			return nil
		}
	} else {
		// Membership numbers only order a group's members: they need not
		// be unique.
		m.Seq = rec.Seq
		m.JoinedAt = im.now
	}
	im.members[key] = m
	im.queue(line, key, "members", !exists, m.Seq, m, &rev)
	return nil
}

func (im *importer) addRole(line int, rec ImportRecord) error {
	if rec.Username != "" || rec.GroupID != "" || rec.UserID != "" || rec.Role != "" || len(rec.Roles) > 0 || rec.Type != "" || rec.Seq != 0 {
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
	im.queue(line, roleKey(r.ID), "", !exists, 0, r, nil)
	return nil
}

// queue adds a record to the batch, to be written with a compare-and-set
// on rev (nil: a plain put). A new record of a numbered kind is given the
// next number at flush, or keeps the seq its line gave. A key the batch
// writes already is written once, with the last line's value: the lines
// were checked in order against the import's own view.
func (im *importer) queue(line int, key, seqKind string, created bool, seq int64, v any, rev *uint64) {
	if i, ok := im.byKey[key]; ok {
		p := &im.batch[i]
		p.more = append(p.more, line)
		p.value = v
		return
	}
	if im.byKey == nil {
		im.byKey = map[string]int{}
	}
	im.byKey[key] = len(im.batch)
	p := pending{line: line, key: key, created: created, rev: rev, value: v}
	if created && seqKind != "" {
		if seq == 0 {
			p.kind = seqKind
		} else {
			p.raise, p.seq = seqKind, seq
		}
	}
	im.batch = append(im.batch, p)
}

// flush stores the batch: it assigns numeric aliases to new records,
// publishes the batch without waiting for each acknowledgement, then waits
// for all of them and for the index to apply them. On success every line
// read so far is applied; on failure the batch may be stored in part.
func (im *importer) flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, importBatchTimeout)
	defer cancel()
	if len(im.batch) == 0 {
		im.applied = im.lineNo
		return nil
	}
	need := map[string]int64{}
	top := map[string]int64{}
	for _, p := range im.batch {
		if p.kind != "" {
			need[p.kind]++
		}
		if p.raise != "" {
			top[p.raise] = max(top[p.raise], p.seq)
		}
	}
	// Numbers handed out from now on, to this batch or to anyone, must be
	// above those the lines gave.
	for kind, n := range top {
		if err := im.raiseSeq(ctx, kind, n); err != nil {
			return err
		}
	}
	if top["users"] > 0 || top["groups"] > 0 {
		if err := im.dropTakenSeqs(ctx); err != nil {
			return err
		}
	}
	release, err := im.claimNames(ctx)
	if err != nil {
		return err
	}
	next := map[string]int64{}
	for kind, n := range need {
		first, err := im.s.reserveSeq(ctx, kind, n)
		if err != nil {
			return err
		}
		next[kind] = first
	}
	msgs := make([]*nats.Msg, len(im.batch))
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
		m, err := im.message(p.key, p.value, p.rev)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	acks, errs, err := jskv.PublishAll(ctx, im.s.pub, msgs)
	if err != nil {
		return fmt.Errorf("membership: import: waiting for the store: %w", err)
	}
	// A record the store refuses is not a fault of its line: the store
	// cannot take writes now, and the import stops where it is. A
	// compare-and-set that lost is: another request wrote the key since
	// the line was read.
	var failed error
	var taken []int // new records whose key was not empty
	for i := range im.batch {
		p := &im.batch[i]
		switch err := errs[i]; {
		case err == nil:
			im.stored(p, acks[i].Sequence)
		case !isWrongSequence(err):
			if failed == nil {
				failed = fmt.Errorf("membership: import: store line %d: %w", p.line, err)
			}
		case p.created:
			taken = append(taken, i)
		default:
			im.conflict(p, "changed")
		}
	}
	if failed != nil {
		return failed
	}
	if err := im.recreate(ctx, taken); err != nil {
		return err
	}
	for _, p := range im.batch {
		if old, ok := release[p.key]; ok && p.stored {
			im.s.releaseName(ctx, old, p.value.(User).ID)
		}
	}
	im.batch = im.batch[:0]
	clear(im.byKey)
	// Records now acknowledged become visible in the index shortly; keep
	// the import's own view small by dropping what the index has caught up on.
	if err := im.s.waitApplied(ctx, im.lastRev); err != nil {
		return err
	}
	im.applied = im.lineNo
	clear(im.users)
	clear(im.usernames)
	clear(im.userSeqs)
	clear(im.groups)
	clear(im.groupSeqs)
	clear(im.members)
	clear(im.roles)
	return nil
}

// dropTakenSeqs takes out of the batch the new users and groups whose line
// gave a seq that another record holds now (see drop). The index is brought up to
// what the stream's leader holds first: a record created since the line
// was checked is in it then. The sequence has been raised above every seq
// the batch gives, so no number handed out from now on is one of them; one
// handed out before and not yet stored still escapes this check.
func (im *importer) dropTakenSeqs(ctx context.Context) error {
	if err := im.s.CaughtUp(ctx); err != nil {
		return err
	}
	gone := map[string]error{} // key of a new user or group → why it fails
	for _, p := range im.batch {
		if p.raise == "" {
			continue
		}
		var holder string
		switch v := p.value.(type) {
		case User:
			if o, ok := im.s.index.UserBySeq(p.seq); ok && o.ID != v.ID {
				holder = "user " + o.ID
			}
		case Group:
			if o, ok := im.s.index.GroupBySeq(p.seq); ok && o.ID != v.ID {
				holder = "group " + o.ID
			}
		}
		if holder != "" {
			gone[p.key] = invalid("seq", "%d was given to %s while the import ran", p.seq, holder)
		}
	}
	im.drop(gone)
	return nil
}

// claimNames claims the username of every new or renamed user of the
// batch, as writeUser does (see claimName), the claims sent at once. A
// name another user holds takes its user out of the batch (see drop). It
// returns the names that renamed users give back once stored, by key.
func (im *importer) claimNames(ctx context.Context) (map[string]string, error) {
	type claim struct {
		p    *pending
		user User
	}
	var claims []claim
	var msgs []*nats.Msg
	release := map[string]string{}
	for i := range im.batch {
		p := &im.batch[i]
		u, ok := p.value.(User)
		if !ok {
			continue
		}
		old, exists := im.s.index.User(u.ID)
		if exists && old.Username == u.Username {
			continue
		}
		if exists {
			release[p.key] = old.Username
		}
		m, err := im.message(nameKey(u.Username), u.ID, new(uint64))
		if err != nil {
			return nil, err
		}
		claims = append(claims, claim{p, u})
		msgs = append(msgs, m)
	}
	_, errs, err := jskv.PublishAll(ctx, im.s.pub, msgs)
	if err != nil {
		return nil, fmt.Errorf("membership: import: waiting for the store: %w", err)
	}
	gone := map[string]error{}
	for k, c := range claims {
		err := errs[k]
		if isWrongSequence(err) {
			// Claimed before, given back, or another user's: as a create
			// of the user would.
			err = im.s.claimName(ctx, c.user.Username, c.user.ID)
		}
		switch {
		case errors.Is(err, ErrInvalid):
			gone[c.p.key] = err
			delete(release, c.p.key)
		case err != nil:
			return nil, fmt.Errorf("membership: import: claim the username of line %d: %w", c.p.line, err)
		}
	}
	im.drop(gone)
	return release, nil
}

// drop takes out of the batch the writes of gone's keys (users and
// groups), and the memberships of the batch that name a user or group it
// would have created, and fails their lines with gone's error.
func (im *importer) drop(gone map[string]error) {
	if len(gone) == 0 {
		return
	}
	unborn := map[string]error{} // the keys of gone that the batch creates
	for _, p := range im.batch {
		if err, ok := gone[p.key]; ok && p.created {
			unborn[p.key] = err
		}
	}
	keep := im.batch[:0]
	for _, p := range im.batch {
		err, drop := gone[p.key]
		if m, ok := p.value.(Member); ok && !drop {
			for _, k := range []string{userKey(m.UserID), groupKey(m.GroupID)} {
				if e, ok := unborn[k]; ok {
					err, drop = fmt.Errorf("%s rests on a line that failed: %w", describe(p.value), e), true
					break
				}
			}
		}
		if drop {
			im.failLines(&p, err)
		} else {
			keep = append(keep, p)
		}
	}
	im.batch = keep
	clear(im.byKey)
	for i, p := range im.batch {
		im.byKey[p.key] = i
	}
}

// message is the write of v under key, with a compare-and-set on rev
// unless it is nil, and an id of its own, with which the stream takes it
// once however often jskv.PublishAll sends it.
func (im *importer) message(key string, v any, rev *uint64) (*nats.Msg, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("membership: import: encode: %w", err)
	}
	return jskv.KeyWrite(im.s.cfg.Bucket, key, b, rev), nil
}

// stored counts the lines of p, acknowledged at revision rev.
func (im *importer) stored(p *pending, rev uint64) {
	p.stored = true
	im.lastRev = max(im.lastRev, rev)
	if p.created {
		im.rep.Created++
	} else {
		im.rep.Updated++
	}
	im.rep.Updated += len(p.more)
}

// conflict fails the lines of p: another request wrote (what: "created",
// "changed") its key since they were read, and the import does not
// overwrite it. Imports are idempotent: running the input again applies
// them to what is stored then.
func (im *importer) conflict(p *pending, what string) {
	im.failLines(p, fmt.Errorf("%s was %s by another request while the import ran; import again to apply this line", describe(p.value), what))
}

// failLines fails the lines of p, which were read before lines that may
// have failed already: the report lists failures by line.
func (im *importer) failLines(p *pending, err error) {
	im.fail(p.line, err)
	for _, l := range p.more {
		im.fail(l, err)
	}
	slices.SortStableFunc(im.rep.Errors, func(a, b ImportError) int { return a.Line - b.Line })
}

// recreate writes again the new records of the batch (which) whose
// creation found their key not empty. A key whose last entry is a
// deletion is written over it. One that holds a value was created by
// another request since the line was read, and its lines fail.
func (im *importer) recreate(ctx context.Context, which []int) error {
	var sent []*pending
	var msgs []*nats.Msg
	for _, i := range which {
		p := &im.batch[i]
		rev, live, err := jskv.LastRevisionRetried(ctx, im.s.cfg.JetStream, im.s.kv, p.key)
		if err != nil {
			return fmt.Errorf("membership: import: store line %d: %w", p.line, err)
		}
		if live {
			im.conflict(p, "created")
			continue
		}
		m, err := im.message(p.key, p.value, &rev)
		if err != nil {
			return err
		}
		sent = append(sent, p)
		msgs = append(msgs, m)
	}
	acks, errs, err := jskv.PublishAll(ctx, im.s.pub, msgs)
	if err != nil {
		return fmt.Errorf("membership: import: waiting for the store: %w", err)
	}
	for k, p := range sent {
		switch err := errs[k]; {
		case err == nil:
			im.stored(p, acks[k].Sequence)
		case isWrongSequence(err):
			im.conflict(p, "created")
		default:
			return fmt.Errorf("membership: import: store line %d: %w", p.line, err)
		}
	}
	return nil
}

// describe names a record for people.
func describe(v any) string {
	switch v := v.(type) {
	case User:
		return "user " + v.ID
	case Group:
		return "group " + v.ID
	case Member:
		return "the membership of " + v.UserID + " in " + v.GroupID
	case Role:
		return "role " + v.ID
	}
	return fmt.Sprint(v)
}

// raiseSeq makes the numeric alias sequence of kind at least n.
func (im *importer) raiseSeq(ctx context.Context, kind string, n int64) error {
	x := im.s.index
	x.mu.RLock()
	cur := x.seqs[kind].v
	x.mu.RUnlock()
	if cur >= n {
		return nil
	}
	// The index may lag the bucket: reserving from a stale number raises
	// the sequence further than needed, never less.
	_, err := im.s.reserveSeq(ctx, kind, n-cur)
	return err
}

// claimSeq gives seq to id, a user or group (kind) of an import, unless a
// line before it or a stored one (stored) has it already.
func claimSeq(claimed map[int64]string, seq int64, id, kind string, stored func(int64) (string, bool)) error {
	other, ok := claimed[seq]
	if !ok {
		other, ok = stored(seq)
	}
	if ok {
		return invalid("seq", "%d is the seq of %s %s", seq, kind, other)
	}
	claimed[seq] = id
	return nil
}
