package broker_test

import (
	"net/http"
	"testing"
)

// TestRESTBodiesAreStrict: a JSON body that a lenient reader would take one
// way and another reader another (a name in another case, a name twice,
// invalid UTF-8) is refused with 400, as the WebSocket protocol's decoder
// refuses such frames. Before, "ID" overrode "id", the last duplicate won
// and invalid UTF-8 was stored as U+FFFD.
func TestRESTBodiesAreStrict(t *testing.T) {
	s := startServer(t, "")
	for _, tt := range []struct{ name, body string }{
		{"name in another case", `{"ID":"x1","username":"x1"}`},
		{"both cases", `{"id":"x2","ID":"y2","username":"x2"}`},
		{"duplicate name", `{"id":"x3","username":"x3","username":"y3"}`},
		{"invalid UTF-8", "{\"id\":\"x4\",\"username\":\"x4\",\"name\":\"bad \xff\"}"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var e apiErr
			if st := call(t, "POST", s.URL+"/v1/users", s.Admin, tt.body, &e); st != http.StatusBadRequest || e.Error.Code != "bad_request" {
				t.Fatalf("status %d %+v, want 400 bad_request", st, e)
			}
		})
	}
	if st := call(t, "POST", s.URL+"/v1/users", s.Admin, `{"id":"ok","username":"ok"}`, nil); st != http.StatusCreated {
		t.Fatalf("a plain body: %d", st)
	}
}
