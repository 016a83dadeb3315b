// Package protocol is the presenced WebSocket wire format, version 1.
//
// A connection speaks the subprotocol [Subprotocol] ("presence.v1.json"):
// every WebSocket message is one JSON object, a frame, whose "op" field names
// it. Clients send requests carrying an "id" of their choosing; the server
// echoes that id in the reply, and pushes unsolicited frames (deltas, counts)
// without one. README.md in this folder is the full specification.
//
// Entry points:
//
//   - Server side: [DecodeClientFrame] parses and validates a client frame
//     strictly and reports problems as an [*Error] whose [ErrorCode] goes back
//     to the client in an error frame. The Append functions ([AppendHello],
//     [AppendSnapshotStart], [AppendMember], [AppendSnapshotEnd],
//     [AppendDelta], [AppendResumed], [AppendCounts], [AppendStatuses],
//     [AppendOK], [AppendPong], [AppendError]) encode server frames into a
//     caller-owned buffer without reflection or allocation.
//   - Client side: [EncodeClientFrame] and [DecodeServerFrame]. The Go client
//     in protocol/client and the JavaScript module in protocol/jsclient build
//     on them.
//
// The package holds the shared vocabulary too: [Op] values, [ErrorCode]
// values, WebSocket close codes, [Status] values and the default limits.
//
// protocol imports only the standard library, so that any program can speak
// the wire format without pulling in the broker; a test enforces it. It does
// not log.
package protocol
