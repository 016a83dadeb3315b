package broker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/protocol"
)

// TestRevokedWhileTheSessionIsStored: a WebSocket's credential is checked
// at the handshake, and then its session is written to the store, which
// waits out an election of the stream's leader: seconds. A token revoked,
// or a user deleted, in between found no connection to close, and the
// connection got its hello and stayed open, its user online on every node
// (found from outside: kill -9 of the presence stream's leader, then a
// revocation while handshakes waited, 3 of 3; and SIGSTOP of a node, 2 of
// 2). The connection must be closed with 4002 instead, and its user must
// not stay online.
func TestRevokedWhileTheSessionIsStored(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret, id := mustIssue(t, s, map[string]any{"userId": "a", "scopes": []string{"connect"}})
	cases := []struct {
		name, user, token string
		revoke            func(t *testing.T)
	}{
		{"a token revoked", "a", secret, func(t *testing.T) {
			if st := call(t, "DELETE", s.URL+"/v1/tokens/"+id, s.Admin, nil, nil); st != http.StatusNoContent {
				t.Errorf("revoke: %d", st)
			}
		}},
		{"a user deleted", "b", userJWT(t, "b", time.Hour), func(t *testing.T) {
			if st := call(t, "DELETE", s.URL+"/v1/users/b", s.Admin, nil, nil); st != http.StatusNoContent {
				t.Errorf("delete: %d", st)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			broker.SetSessionStoredHook(func(user string) {
				if user == tc.user {
					tc.revoke(t) // answered once this node applied it
				}
			})
			defer broker.SetSessionStoredHook(nil)
			c, _, err := dialWS(t, s, tc.token, nil)
			if err != nil {
				t.Fatal(err) // the handshake passed before the revocation
			}
			for {
				select {
				case f, ok := <-c.frames:
					if ok {
						t.Logf("frame %+v", f)
						continue
					}
				case <-time.After(5 * time.Second):
					t.Fatal("the connection stayed open")
				}
				break
			}
			if err := <-c.closed; websocket.CloseStatus(err) != protocol.CloseUnauthorized {
				t.Fatalf("closed with %v, want %d", err, protocol.CloseUnauthorized)
			}
			// Its session ends with its grace, as any revoked one does.
			for s.Engine().Status(tc.user).Status.Online() {
				if ctx.Err() != nil {
					t.Fatalf("%s still online", tc.user)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
