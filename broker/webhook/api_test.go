package webhook_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/internal/natstest"
)

// api serves s.Routes on a real socket, wrapped as the broker does:
// errors rendered as {"error":{"code","message"}}.
type api struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	scopes []string
}

func newAPI(t *testing.T, s *webhook.Service) *api {
	a := &api{t: t}
	mux := http.NewServeMux()
	wrap := func(scope string, h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
		a.mu.Lock()
		a.scopes = append(a.scopes, scope)
		a.mu.Unlock()
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			err := h(w, r)
			if err == nil {
				return
			}
			he := &webhook.HTTPError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
			if !errors.As(err, &he) {
				t.Errorf("%s %s: unmapped error %v", r.Method, r.URL.Path, err)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(he.Status)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": he.Code, "message": he.Message}})
		})
	}
	h := s.API()
	mux.Handle("GET /v1/webhooks", wrap(webhook.Scope, h.List))
	mux.Handle("POST /v1/webhooks", wrap(webhook.Scope, h.Create))
	mux.Handle("GET /v1/webhooks/{id}", wrap(webhook.Scope, h.Get))
	mux.Handle("PATCH /v1/webhooks/{id}", wrap(webhook.Scope, h.Patch))
	mux.Handle("DELETE /v1/webhooks/{id}", wrap(webhook.Scope, h.Delete))
	mux.Handle("GET /v1/webhooks/{id}/status", wrap(webhook.Scope, h.Status))
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// apiReply is an answer of the API.
type apiReply struct {
	status int
	header http.Header
	raw    string
	json   map[string]any
}

func (r apiReply) errorCode() string {
	e, _ := r.json["error"].(map[string]any)
	code, _ := e["code"].(string)
	if msg, _ := e["message"].(string); code != "" && msg == "" {
		return code + " (no message)"
	}
	return code
}

func (a *api) do(method, path, body string) apiReply {
	a.t.Helper()
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		a.t.Errorf("%s %s: %v", method, path, err)
		return apiReply{}
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Errorf("%s %s: %v", method, path, err)
		return apiReply{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := apiReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.json); err != nil {
			a.t.Errorf("%s %s: answer %q is not a JSON object", method, path, raw)
		}
	}
	return r
}

func TestAPICRUD(t *testing.T) {
	srv := natstest.Start(t)
	s := newService(t, srv, webhook.Config{StatusWait: 20 * time.Millisecond, NodeID: "n1"})
	a := newAPI(t, s)

	if len(a.scopes) != 6 || slices.ContainsFunc(a.scopes, func(s string) bool { return s != "admin" }) {
		t.Fatalf("routes wrapped with scopes %v, want 6 × admin", a.scopes)
	}

	r := a.do("POST", "/v1/webhooks", `{"url":"https://example.com/hook"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id, _ := r.json["id"].(string)
	secret, _ := r.json["secret"].(string)
	if !webhook.ValidID(id) || len(secret) < webhook.MinSecretLen || r.header.Get("Location") != "/v1/webhooks/"+id {
		t.Fatalf("create answered %s (Location %q), want an id, a generated secret and a Location", r.raw, r.header.Get("Location"))
	}
	if users, ok := r.json["users"].([]any); !ok || len(users) != 0 || r.json["disabled"] != false || r.json["createdAt"] == nil {
		t.Fatalf("create answered %s", r.raw)
	}

	r = a.do("POST", "/v1/webhooks", `{"url":"http://127.0.0.1:9/x","secret":"my-own-secret-123456","users":["bob","bob","alice"],"disabled":true}`)
	if r.status != http.StatusCreated || r.json["secret"] != "my-own-secret-123456" || r.json["disabled"] != true {
		t.Fatalf("create with options: %d %s", r.status, r.raw)
	}
	if users, _ := json.Marshal(r.json["users"]); string(users) != `["bob","alice"]` {
		t.Fatalf("users = %s, want duplicates dropped", users)
	}
	id2, _ := r.json["id"].(string)

	r = a.do("GET", "/v1/webhooks/"+id, "")
	if r.status != http.StatusOK || r.json["id"] != id || r.json["url"] != "https://example.com/hook" {
		t.Fatalf("get: %d %s", r.status, r.raw)
	}
	if _, ok := r.json["secret"]; ok || strings.Contains(r.raw, secret) {
		t.Fatalf("get shows the secret: %s", r.raw)
	}

	// Paging in id order.
	first, second := min(id, id2), max(id, id2)
	r = a.do("GET", "/v1/webhooks?limit=1", "")
	items, _ := r.json["items"].([]any)
	cursor, _ := r.json["nextCursor"].(string)
	if r.status != http.StatusOK || len(items) != 1 || items[0].(map[string]any)["id"] != first || cursor == "" {
		t.Fatalf("list page 1: %d %s", r.status, r.raw)
	}
	r = a.do("GET", "/v1/webhooks?limit=1&cursor="+cursor, "")
	items, _ = r.json["items"].([]any)
	if r.status != http.StatusOK || len(items) != 1 || items[0].(map[string]any)["id"] != second {
		t.Fatalf("list page 2: %d %s", r.status, r.raw)
	}
	r = a.do("GET", "/v1/webhooks", "")
	if items, _ := r.json["items"].([]any); len(items) != 2 || strings.Contains(r.raw, secret) || strings.Contains(r.raw, "my-own-secret") {
		t.Fatalf("list: %s", r.raw)
	}
	if _, ok := r.json["nextCursor"]; ok {
		t.Fatalf("list of everything has a next cursor: %s", r.raw)
	}

	r = a.do("PATCH", "/v1/webhooks/"+id, `{"disabled":true,"users":["carol"]}`)
	if r.status != http.StatusOK || r.json["disabled"] != true || r.json["url"] != "https://example.com/hook" {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	if _, ok := r.json["secret"]; ok {
		t.Fatalf("patch shows the secret: %s", r.raw)
	}
	if w, _ := s.Store().Get(id); !w.Disabled || !slices.Equal(w.Users, []string{"carol"}) || w.Secret != secret {
		t.Fatalf("stored after patch: %+v", w)
	}

	r = a.do("GET", "/v1/webhooks/"+id2+"/status", "")
	if r.status != http.StatusOK || r.json["webhook"] != id2 || r.json["delivered"] != float64(0) || r.json["queued"] != float64(0) {
		t.Fatalf("status: %d %s", r.status, r.raw)
	}
	if nodes, _ := r.json["nodes"].([]any); len(nodes) != 1 || nodes[0].(map[string]any)["node"] != "n1" {
		t.Fatalf("status nodes: %s", r.raw)
	}

	r = a.do("DELETE", "/v1/webhooks/"+id, "")
	if r.status != http.StatusNoContent || r.raw != "" {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	for _, req := range [][2]string{{"GET", ""}, {"DELETE", ""}, {"GET", "/status"}} {
		if r := a.do(req[0], "/v1/webhooks/"+id+req[1], ""); r.status != http.StatusNotFound || r.errorCode() != "not_found" {
			t.Errorf("%s after delete: %d %s", req[0], r.status, r.raw)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	srv := natstest.Start(t)
	s := newService(t, srv, webhook.Config{MaxBodyBytes: 1024, MaxWebhooks: 2})
	a := newAPI(t, s)
	r := a.do("POST", "/v1/webhooks", `{"url":"https://example.com/"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id, _ := r.json["id"].(string)

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"empty body", "POST", "/v1/webhooks", ``, 400, "bad_request"},
		{"not JSON", "POST", "/v1/webhooks", `url=x`, 400, "bad_request"},
		{"two values", "POST", "/v1/webhooks", `{"url":"https://a.example/"} {}`, 400, "bad_request"},
		{"unknown field", "POST", "/v1/webhooks", `{"url":"https://a.example/","events":["x"]}`, 400, "bad_request"},
		{"id not settable", "POST", "/v1/webhooks", `{"id":"wh_00000000000000000000","url":"https://a.example/"}`, 400, "bad_request"},
		{"no url", "POST", "/v1/webhooks", `{}`, 400, "bad_request"},
		{"bad scheme", "POST", "/v1/webhooks", `{"url":"ftp://a.example/"}`, 400, "bad_request"},
		{"relative url", "POST", "/v1/webhooks", `{"url":"/hook"}`, 400, "bad_request"},
		{"credentials in url", "POST", "/v1/webhooks", `{"url":"https://u:p@a.example/"}`, 400, "bad_request"},
		{"short secret", "POST", "/v1/webhooks", `{"url":"https://a.example/","secret":"abc"}`, 400, "bad_request"},
		{"bad user id", "POST", "/v1/webhooks", `{"url":"https://a.example/","users":["a b"]}`, 400, "bad_request"},
		{"users not a list", "POST", "/v1/webhooks", `{"url":"https://a.example/","users":"alice"}`, 400, "bad_request"},
		{"too large", "POST", "/v1/webhooks", `{"url":"https://a.example/","secret":"` + strings.Repeat("x", 2000) + `"}`, 413, "too_large"},
		{"unknown id", "GET", "/v1/webhooks/wh_00000000000000000000", ``, 404, "not_found"},
		{"malformed id", "GET", "/v1/webhooks/not.an.id", ``, 404, "not_found"},
		{"wildcard id", "DELETE", "/v1/webhooks/%3E", ``, 404, "not_found"},
		{"status of unknown", "GET", "/v1/webhooks/wh_00000000000000000000/status", ``, 404, "not_found"},
		{"patch unknown", "PATCH", "/v1/webhooks/wh_00000000000000000000", `{"disabled":true}`, 404, "not_found"},
		{"patch bad url", "PATCH", "/v1/webhooks/" + id, `{"url":"mailto:x@y"}`, 400, "bad_request"},
		{"patch secret", "PATCH", "/v1/webhooks/" + id, `{"secret":"a-new-secret-0123456"}`, 400, "bad_request"},
		{"limit zero", "GET", "/v1/webhooks?limit=0", ``, 400, "bad_request"},
		{"limit too big", "GET", "/v1/webhooks?limit=1001", ``, 400, "bad_request"},
		{"bad cursor", "GET", "/v1/webhooks?cursor=***", ``, 400, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.body)
			if r.status != tt.status || r.errorCode() != tt.code {
				t.Fatalf("%s %s: %d %s, want %d %s", tt.method, tt.path, r.status, r.raw, tt.status, tt.code)
			}
		})
	}
	if n := len(s.Store().List()); n != 1 {
		t.Fatalf("%d webhooks after failed requests, want 1", n)
	}
	if w, _ := s.Store().Get(id); w.URL != "https://example.com/" {
		t.Fatalf("a failed patch changed the webhook: %+v", w)
	}

	if r := a.do("POST", "/v1/webhooks", `{"url":"https://b.example/"}`); r.status != http.StatusCreated {
		t.Fatalf("second create: %d %s", r.status, r.raw)
	}
	if r := a.do("POST", "/v1/webhooks", `{"url":"https://c.example/"}`); r.status != http.StatusConflict || r.errorCode() != "conflict" {
		t.Fatalf("create past MaxWebhooks: %d %s", r.status, r.raw)
	}
}

// A webhook created through the API receives changes signed with the
// secret the creation showed.
func TestAPICreatedWebhookDelivers(t *testing.T) {
	srv := natstest.Start(t)
	rc := newReceiver(t, nil)
	s := newService(t, srv, webhook.Config{BatchSize: 1})
	a := newAPI(t, s)
	body, _ := json.Marshal(map[string]any{"url": rc.URL(), "users": []string{"alice"}})
	r := a.do("POST", "/v1/webhooks", string(body))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	rc.setSecret(r.json["secret"].(string))
	publish(t, natstest.Connect(t, srv), change(1, "bob"), change(2, "alice"))
	eventually(t, "the delivery", func() bool { return s.Stats().Delivered == 1 })
	got := rc.accepted()[0]
	if !got.valid || len(got.body.Changes) != 1 || got.body.Changes[0].User != "alice" {
		t.Fatalf("delivered %s (signature valid: %v)", got.raw, got.valid)
	}
	r = a.do("GET", "/v1/webhooks/"+got.body.Webhook+"/status", "")
	if r.status != http.StatusOK || r.json["delivered"] != float64(1) || r.json["batches"] != float64(1) {
		t.Fatalf("status: %d %s", r.status, r.raw)
	}
}

func TestAPIBeforeStart(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	s, err := webhook.New(webhook.Config{Conn: nc, JetStream: jsOf(t, nc)})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s)
	if r := a.do("GET", "/v1/webhooks", ""); r.status != http.StatusServiceUnavailable || r.errorCode() != "unavailable" {
		t.Fatalf("list before Start: %d %s", r.status, r.raw)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown of a service never started: %v", err)
	}
	if err := s.Start(t.Context()); !errors.Is(err, webhook.ErrClosed) {
		t.Fatalf("Start after Shutdown: %v, want ErrClosed", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	js := jsOf(t, nc)
	for name, cfg := range map[string]webhook.Config{
		"no conn":         {JetStream: js},
		"no jetstream":    {Conn: nc},
		"backoff min>max": {Conn: nc, JetStream: js, MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if _, err := webhook.New(cfg); !errors.Is(err, webhook.ErrInvalid) {
			t.Errorf("%s: New = %v, want ErrInvalid", name, err)
		}
	}
}
