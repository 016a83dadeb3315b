package compattest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Response is one HTTP answer as a test reads it.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Serve runs h on 127.0.0.1 until the test ends and returns its base URL.
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Do sends req and reads the answer.
func Do(t testing.TB, req *http.Request) Response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: body}
}

// JSON decodes the body.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// Golden compares the status and body of r with testdata/<name>.json, or
// rewrites the file under -update. Key order is kept as the server sent it.
func Golden(t testing.TB, name string, r Response) {
	t.Helper()
	var body bytes.Buffer
	if err := json.Indent(&body, bytes.TrimSpace(r.Body), "  ", "  "); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.Body)
	}
	got := fmt.Sprintf("{\n  \"status\": %d,\n  \"body\": %s\n}\n", r.Status, body.String())
	path := filepath.Join("testdata", strings.ReplaceAll(name, "/", "_")+".json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the answer:\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// Subset fails unless every key of want is in got with an equal value,
// recursively; arrays must have the same length. It checks a server answer
// against a vendor's example, which may leave fields out.
func Subset(t testing.TB, want, got any) {
	t.Helper()
	if err := subset("$", want, got); err != nil {
		t.Error(err)
	}
}

func subset(path string, want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %#v", path, got)
		}
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s.%s: missing", path, k)
			}
			if err := subset(path+"."+k, v, gv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: want %d items, got %#v", path, len(w), got)
		}
		for i := range w {
			if err := subset(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); err != nil {
				return err
			}
		}
		return nil
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Errorf("%s: want %#v, got %#v", path, want, got)
		}
		return nil
	}
}

// Decode parses a JSON literal of a test (a vendor example).
func Decode(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}
