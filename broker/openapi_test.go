package broker_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/broker/openapi"
)

// TestOpenAPIDocument loads the embedded document with kin-openapi and
// validates it as an OpenAPI 3.1 document.
func TestOpenAPIDocument(t *testing.T) {
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, ok := ids[op.OperationID]; ok {
				t.Errorf("%s and %s share operationId %q", where, other, op.OperationID)
			}
			ids[op.OperationID] = where
			// Every operation says what it needs, even nothing: no reader
			// should have to guess whether a route is public.
			if op.Security == nil {
				t.Errorf("%s has no security requirement (use [] for a public route)", where)
			}
		}
	}
}

// TestOpenAPIRoutes holds the document to the router: every native route
// of broker/routes.go is described, and nothing else is.
func TestOpenAPIRoutes(t *testing.T) {
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "")
	patterns, err := s.NativeRoutes()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, p := range patterns {
		route, err := documentRoute(p)
		if err != nil {
			t.Errorf("native route %q in broker/routes.go: %v", p, err)
			continue
		}
		registered[route] = true
	}
	described := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described[method+" "+path] = true
		}
	}
	for _, r := range sortedKeys(registered) {
		if !described[r] {
			method, path, _ := strings.Cut(r, " ")
			t.Errorf("native route %s (broker/routes.go) is missing from broker/openapi/openapi.json: describe it under paths[%q].%s",
				r, path, strings.ToLower(method))
		}
	}
	for _, r := range sortedKeys(described) {
		if !registered[r] {
			t.Errorf("broker/openapi/openapi.json describes %s, which broker/routes.go does not register as a native route: remove it from the document, or register it", r)
		}
	}
}

// documentRoute turns a ServeMux pattern into "METHOD /path" as the
// document writes it: {name...} wildcards become {name}.
func documentRoute(pattern string) (string, error) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || method == "" {
		return "", fmt.Errorf("no method: give the pattern one, so that the document can describe it")
	}
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("a pattern with a host cannot be described")
	}
	if strings.HasSuffix(path, "/") || strings.Contains(path, "{$}") {
		return "", fmt.Errorf("a subtree pattern cannot be described: end it with a segment")
	}
	path = strings.ReplaceAll(path, "...}", "}")
	return method + " " + path, nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestOpenAPIServed reads the document at /v1/openapi.json without a
// token, then again with its ETag.
func TestOpenAPIServed(t *testing.T) {
	s := startServer(t, "")
	resp, err := http.Get(s.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, openapi.JSON()) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest("GET", s.URL+"/v1/openapi.json", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("GET with If-None-Match %q: %d", etag, resp.StatusCode)
	}
}

// TestOpenAPIConformanceFails checks that the validating client rejects
// answers that the document does not allow, so that the REST tests would
// notice a drift.
func TestOpenAPIConformanceFails(t *testing.T) {
	answers := map[string]struct {
		status int
		body   string
	}{
		"/healthz":             {200, `{"status":"ok"}`},             // conforms
		"/readyz":              {200, `{"ready":"yes","checks":{}}`}, // ready is a boolean
		"/v1/users":            {200, `{"items":[],"extra":1}`},      // unknown field
		"/v1/stats":            {418, `{}`},                          // undocumented status
		"/v1/users/a":          {404, `{"error":{"code":"nope","message":"m"}}`},
		"/v1/presence/counts":  {401, `{"error":{"code":"unauthorized","message":"m"}}`}, // no WWW-Authenticate
		"/v1/presence/users/a": {200, `{"user":"a","status":"asleep","rev":1}`},
		"/v1/groups/g/members": {500, `{"error":{"code":"bad_request","message":"m"}}`}, // code of another status
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.URL.Path]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	defer srv.Close()
	for path := range answers {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer x")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if (err == nil) != (path == "/healthz") {
			t.Errorf("GET %s answering %d %s: error %v", path, answers[path].status, answers[path].body, err)
		}
	}
}
