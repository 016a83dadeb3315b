package membership

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
)

// exportPage is how many users or groups Export copies out of the index at
// a time.
const exportPage = 1000

// Export writes the membership to w as NDJSON in the import format: the
// custom roles, the users, the groups, then the members of each group,
// with their numeric aliases. Importing it into an empty store reproduces
// the membership; tokens are not part of it. Records are read a page at a
// time, so writes made during an export may or may not be in it. Export
// returns how many lines it wrote.
func (x *Index) Export(ctx context.Context, w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	lines := 0
	put := func(rec ImportRecord) error {
		lines++
		return enc.Encode(rec)
	}
	for _, r := range x.Roles() {
		if r.Builtin {
			continue
		}
		if err := put(roleRecord(r)); err != nil {
			return lines, err
		}
	}
	for after := ""; ; {
		users := x.ListUsers(after, exportPage)
		for _, u := range users {
			if err := put(userRecord(u)); err != nil {
				return lines, err
			}
		}
		if len(users) < exportPage {
			break
		}
		after = users[len(users)-1].ID
		if err := ctx.Err(); err != nil {
			return lines, err
		}
	}
	var groupIDs []string
	for after := ""; ; {
		groups := x.ListGroups(after, exportPage)
		for _, g := range groups {
			if err := put(groupRecord(g)); err != nil {
				return lines, err
			}
			groupIDs = append(groupIDs, g.ID)
		}
		if len(groups) < exportPage {
			break
		}
		after = groups[len(groups)-1].ID
		if err := ctx.Err(); err != nil {
			return lines, err
		}
	}
	for _, g := range groupIDs {
		for _, m := range x.Members(g) {
			if err := put(memberRecord(m)); err != nil {
				return lines, err
			}
		}
		if err := ctx.Err(); err != nil {
			return lines, err
		}
	}
	return lines, bw.Flush()
}

func userRecord(u User) ImportRecord {
	active := u.Active
	return ImportRecord{Kind: "user", ID: u.ID, Seq: u.Seq, Username: u.Username, Name: u.Name,
		AvatarURL: u.AvatarURL, UTCOffset: u.UTCOffset, Type: string(u.Type), Active: &active, Roles: u.Roles}
}

func groupRecord(g Group) ImportRecord {
	return ImportRecord{Kind: "group", ID: g.ID, Seq: g.Seq, Name: g.Name, Type: string(g.Type)}
}

func memberRecord(m Member) ImportRecord {
	return ImportRecord{Kind: "member", GroupID: m.GroupID, UserID: m.UserID, Seq: m.Seq, Role: string(m.Role), Roles: m.Roles}
}

func roleRecord(r Role) ImportRecord {
	return ImportRecord{Kind: "role", ID: r.ID, Name: r.Name, Scope: string(r.Scope), Description: r.Description}
}
