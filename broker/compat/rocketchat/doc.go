// Package rocketchat serves the Rocket.Chat REST endpoints that presence
// clients call, from presenced's membership index and presence state:
//
//	GET  /api/v1/groups.online          online members of a private group
//	GET  /api/v1/roles.getUsersInRole   holders of a global or group role
//	GET  /api/v1/users.presence         presence of many users, full or since
//	GET  /api/v1/users.getStatus        one user's status and message
//	POST /api/v1/users.setStatus        set the caller's manual status
//
// New builds a Handler from a Config; the broker mounts it at /api/v1/ and
// passes the full request path. Requests authenticate with X-User-Id and
// X-Auth-Token (Config.Auth decides what a valid pair is). Every answer is
// JSON with Cache-Control: no-store, in Rocket.Chat's success and error
// shapes, with checks in the order the upstream server makes them (see
// shared/compat-spec.md §0–§3 and broker/compat/README.md).
package rocketchat
