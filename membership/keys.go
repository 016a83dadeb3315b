package membership

import "strings"

// DefaultBucket is the JetStream KV bucket that holds membership.
const DefaultBucket = "presenced_membership"

// Key layout of the membership bucket. Ids never contain '.', so every key
// splits unambiguously.
//
//	users.<user>             User
//	groups.<group>           Group
//	members.<group>.<user>   Member
//	roles.<role>             Role
//	tokens.<token>           Token
//	seq.<kind>               counter behind the numeric aliases
//	names.<hex of username>  the id of the user holding the username
const (
	prefixUsers   = "users."
	prefixGroups  = "groups."
	prefixMembers = "members."
	prefixRoles   = "roles."
	prefixTokens  = "tokens."
	prefixSeq     = "seq."
	prefixNames   = "names."
)

// MemberKeyFilter is the KV key filter matching every Member key. The presence
// engine sources exactly these keys into its own bucket.
const MemberKeyFilter = "members.>"

// MemberKey is the KV key of a membership.
func MemberKey(group, user string) string { return prefixMembers + group + "." + user }

// ParseMemberKey splits a Member key into its group and user ids.
func ParseMemberKey(key string) (group, user string, ok bool) {
	rest, ok := strings.CutPrefix(key, prefixMembers)
	if !ok {
		return "", "", false
	}
	group, user, ok = strings.Cut(rest, ".")
	if !ok || group == "" || user == "" || strings.Contains(user, ".") {
		return "", "", false
	}
	return group, user, true
}

func userKey(id string) string  { return prefixUsers + id }
func groupKey(id string) string { return prefixGroups + id }
func roleKey(id string) string  { return prefixRoles + id }
func tokenKey(id string) string { return prefixTokens + id }
