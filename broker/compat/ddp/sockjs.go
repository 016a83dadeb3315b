package ddp

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strings"
)

// Meteor's own client connects through SockJS: it asks /sockjs/info, then
// opens /sockjs/{server}/{session}/websocket, where DDP messages travel in
// SockJS frames. Only the WebSocket transport is served.
//
//	server → client   o                      open, first frame
//	                  a["<ddp>","<ddp>"]     messages, each a JSON string
//	                  c[<code>,"<reason>"]   close, before the socket closes
//	client → server   ["<ddp>","<ddp>"]      messages
const (
	sockjsOpen = "o"
)

// isSockJSWebSocket reports a /sockjs/{server}/{session}/websocket path.
func isSockJSWebSocket(path string) bool {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	return len(parts) == 4 && parts[0] == "sockjs" && parts[1] != "" && parts[2] != "" && parts[3] == "websocket" &&
		!strings.ContainsAny(parts[1]+parts[2], ".")
}

// sockjsMessages wraps DDP messages into one SockJS frame.
func sockjsMessages(msgs ...[]byte) []byte {
	strs := make([]string, len(msgs))
	for i, m := range msgs {
		strs[i] = string(m)
	}
	return append([]byte("a"), marshal(strs)...)
}

// sockjsClose is the close frame SockJS sends before closing the socket.
func sockjsClose(code int, reason string) []byte {
	return append([]byte("c"), marshal([]any{code, reason})...)
}

// sockjsUnwrap returns the DDP messages of a client's SockJS frame: a JSON
// array of strings. A frame that is not one is taken as a bare DDP
// message, as Rocket.Chat's own server does.
func sockjsUnwrap(frame []byte) [][]byte {
	var strs []string
	if len(frame) > 0 && frame[0] == '[' && json.Unmarshal(frame, &strs) == nil {
		out := make([][]byte, len(strs))
		for i, s := range strs {
			out[i] = []byte(s)
		}
		return out
	}
	return [][]byte{frame}
}

// serveInfo answers /sockjs/info: WebSocket available, no cookies.
func serveInfo(w http.ResponseWriter) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0")
	_, _ = w.Write(marshal(struct {
		WebSocket    bool     `json:"websocket"`
		Origins      []string `json:"origins"`
		CookieNeeded bool     `json:"cookie_needed"`
		Entropy      uint32   `json:"entropy"`
	}{true, []string{"*:*"}, false, binary.BigEndian.Uint32(b[:])}))
}
