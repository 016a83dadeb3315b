package protocol

import "strings"

// BearerPrefix starts the Sec-WebSocket-Protocol entry that carries a token
// for clients that cannot set an Authorization header (browsers).
const BearerPrefix = "bearer."

// BearerSubprotocol returns the Sec-WebSocket-Protocol entry carrying token.
// A client offers it next to Subprotocol; the server never selects it.
func BearerSubprotocol(token string) string { return BearerPrefix + token }

// TokenFromSubprotocols returns the token of the first "bearer.<token>"
// entry among the offered subprotocols (each element may hold several
// comma-separated entries, as the header does).
func TokenFromSubprotocols(offered []string) (string, bool) {
	for _, h := range offered {
		for p := range strings.SplitSeq(h, ",") {
			p = strings.TrimSpace(p)
			if tok, ok := strings.CutPrefix(p, BearerPrefix); ok && tok != "" {
				return tok, true
			}
		}
	}
	return "", false
}
