// Package compat groups the vendor compatibility APIs of the broker: REST
// endpoints and Rocket.Chat's realtime WebSocket that existing Rocket.Chat,
// CometChat and Bitrix24 clients call unchanged, answered from presenced's membership index and presence state.
//
// Each vendor has its own package, whose Handler the broker mounts without
// stripping the prefix:
//
//   - rocketchat at /api/v1/ (groups.online, roles.getUsersInRole,
//     users.presence, users.setStatus, users.getStatus)
//   - cometchat at /v3/ (GET /v3/groups/{guid}/members)
//   - bitrix24 at /rest/ (sonet_group.user.get, OAuth and webhook forms)
//   - ddp at /websocket and /sockjs/ (Rocket.Chat's realtime API: login,
//     UserPresence methods, stream-user-presence, stream-notify-logged)
//
// README.md beside this file maps every vendor field onto the membership
// model. This package itself holds only the test that drives the vendors' own
// client libraries (clienttest/, run with Node.js) against the three handlers.
package compat
