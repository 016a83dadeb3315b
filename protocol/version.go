package protocol

// Subprotocol is the WebSocket subprotocol of this wire format. A client
// offers it in Sec-WebSocket-Protocol and the server selects it; a server
// that does not select it does not speak version 1.
const Subprotocol = "presence.v1.json"

// Version is the wire format version announced in the hello frame ("v").
//
// History (a new version gets a new Subprotocol name; changes that old
// clients can ignore, such as new fields in server frames, do not bump it):
//
//   - 2026-11-23: v1. JSON text frames; subscribe with resume by rev and
//     epoch, snapshot, resumed, delta, counts, set_status, query,
//     watch_counts, ping, refresh.
const Version = 1
