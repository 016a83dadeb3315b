// Package client is a Go client of the presenced WebSocket protocol
// (package protocol, spec in protocol/README.md), for services, tests and
// the load generator.
//
// [Dial] connects and returns a [*Client] once the server's hello arrived.
// Requests ([Client.Subscribe], [Client.SubscribeCounts],
// [Client.Unsubscribe], [Client.SetStatus], [Client.Query],
// [Client.WatchCounts], [Client.UnwatchCounts], [Client.Ping],
// [Client.Refresh]) may be called from any goroutine; each waits for its own
// reply, matched by id. Server errors come back as [*protocol.Error].
//
// The client keeps, for every subscribed group, the members (map user →
// member, read with [Client.Members]), the counts and the last revision and
// epoch. With [Options].Reconnect it reconnects after a lost connection with
// jittered exponential backoff and re-subscribes every group from its last
// revision, so that the server answers with exactly the missed changes (or a
// fresh snapshot when it cannot); callers see them as events ([Event]) and
// in the member view.
//
// Events are delivered in order, from one goroutine at a time, to
// [Options].OnEvent or through the bounded channel [Client.Events].
// [Client.Close] stops every goroutine the client started.
package client
