// Package ddp serves Rocket.Chat's realtime API: Meteor's DDP protocol
// (version 1) over a WebSocket, with the methods and streams through which
// Rocket.Chat's web, desktop and mobile apps keep presence live. A
// Rocket.Chat client pointed at presenced logs in with a resume token,
// becomes a presence session of its user like a native WebSocket, sets
// its status and receives every status change it may see as it happens.
//
// # Entry points
//
//   - New(Config) → Handler.Start → Handler.Shutdown(ctx). The Handler is
//     an http.Handler for three paths, mounted as they are: GET /websocket
//     (plain DDP, as @rocket.chat/ddp-client connects), GET
//     /sockjs/{server}/{session}/websocket (DDP in SockJS framing, as
//     Meteor's own client connects) and GET /sockjs/info.
//   - Handler.CloseAll closes every connection (the node became
//     unavailable); Handler.CloseWhere closes the connections logged in
//     with a credential that is no longer valid (revoked, user deactivated
//     or deleted). DDP clients reconnect on any close and log in again.
//
// # Wire format
//
// wire.go holds the messages: connect → connected or failed; ping and
// pong both ways; method → result then updated; sub → ready or nosub;
// unsub → nosub; error with offendingMessage for messages that are not
// DDP; Meteor errors ({"isClientSafe","error","reason","details",
// "message","errorType"}) in results and nosubs.
//
// # Methods and streams
//
// methods.go: login {"resume": token} (what Config.Auth accepts with the
// connect scope), logout, UserPresence:setDefaultStatus,
// UserPresence:online, UserPresence:away and setUserStatus. streams.go:
// stream-user-presence (keyed by a user id, or the web client's
// {"added","removed"} list) and stream-notify-logged "user-status". Who
// may see whom is Config.Visibility's rule, evaluated for every change.
//
// The package depends only on the small interfaces of interfaces.go, so
// it runs without the broker: the broker passes its authenticator, the
// presence engine, the membership index and the authority. Package
// ddptest is a DDP client for tests, here and in the broker's.
package ddp
