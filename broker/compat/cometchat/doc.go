// Package cometchat serves CometChat's REST v3 group member listing from
// presenced's membership index and presence state:
//
//	GET /v3/groups/{guid}/members?perPage=&page=&status=&scopes=
//
// New builds a Handler from a Config; the broker mounts it at /v3/ and
// passes the full request path. Requests authenticate with an apikey header
// holding a presenced API token with the membership:read (or admin) scope,
// CometChat's "fullAccess" key; a token without it is an "authOnly" key.
// Answers and errors use CometChat's JSON shapes (shared/compat-spec.md §4,
// broker/compat/README.md).
package cometchat
