package dashboard_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/presenced/presenced/broker/dashboard"
)

func get(t *testing.T, h http.Handler, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestHandlerServesFiles(t *testing.T) {
	h := dashboard.Handler()
	tests := []struct {
		method, path string
		status       int
		contentType  string // prefix
		contains     string
	}{
		{"GET", "/dashboard/", http.StatusOK, "text/html", `<script type="module" src="app.js">`},
		{"HEAD", "/dashboard/", http.StatusOK, "text/html", ""},
		{"GET", "/dashboard/app.js", http.StatusOK, "text/javascript", `from "../v1/client.js"`},
		{"GET", "/dashboard/dashboard.css", http.StatusOK, "text/css", ":root"},
		{"GET", "/dashboard/favicon.svg", http.StatusOK, "image/svg+xml", "<svg"},
		{"GET", "/dashboard", http.StatusMovedPermanently, "", ""},
		{"GET", "/dashboard/index.html", http.StatusNotFound, "", ""},
		{"GET", "/dashboard/nope.js", http.StatusNotFound, "", ""},
		{"GET", "/dashboard/static/app.js", http.StatusNotFound, "", ""},
		{"GET", "/dashboard/../go.mod", http.StatusNotFound, "", ""},
		{"GET", "/other/app.js", http.StatusNotFound, "", ""},
		{"POST", "/dashboard/", http.StatusMethodNotAllowed, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := get(t, h, tt.method, tt.path, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != dashboard.ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q", got)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
			if tt.method == "HEAD" && body != "" {
				t.Errorf("HEAD answered a body")
			}
			if tt.status == http.StatusMovedPermanently && resp.Header.Get("Location") != dashboard.Prefix {
				t.Errorf("Location %q", resp.Header.Get("Location"))
			}
		})
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := dashboard.Handler()
	resp, _ := get(t, h, "GET", "/dashboard/app.js", nil)
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	resp, body := get(t, h, "GET", "/dashboard/app.js", http.Header{"If-None-Match": {etag}})
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("conditional GET: %d with %d bytes", resp.StatusCode, len(body))
	}
	other, _ := get(t, h, "GET", "/dashboard/dom.js", nil)
	if other.Header.Get("ETag") == etag {
		t.Fatal("two files share an ETag")
	}
}

// The policy forbids inline scripts, inline styles and event-handler
// attributes; the scripts must never turn data into markup. Both are
// checked on the sources, so that a regression fails here and not only in
// a browser.
func TestSourcesKeepThePolicy(t *testing.T) {
	files, err := filepath.Glob("static/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no static files: %v", err)
	}
	inlineScript := regexp.MustCompile(`<script\b[^>]*>\s*[^<\s]`)
	scriptTag := regexp.MustCompile(`<script\b[^>]*>`)
	handlerAttr := regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttr := regexp.MustCompile(`(?i)\sstyle\s*=`)
	markupSinks := regexp.MustCompile(`\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function\(|setAttribute\("on)`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(raw)
		switch filepath.Ext(f) {
		case ".html":
			for _, re := range []*regexp.Regexp{inlineScript, handlerAttr, styleAttr} {
				if m := re.FindString(src); m != "" {
					t.Errorf("%s: %q breaks the Content-Security-Policy", f, m)
				}
			}
			for _, tag := range scriptTag.FindAllString(src, -1) {
				if !strings.Contains(tag, " src=") {
					t.Errorf("%s: %q is an inline script", f, tag)
				}
			}
		case ".js":
			if m := markupSinks.FindString(src); m != "" {
				t.Errorf("%s: %q turns strings into markup or code", f, m)
			}
		}
	}
	// Every file the page and its modules name is served.
	named := regexp.MustCompile(`(?:src|href)="([a-z]+\.[a-z]+)"|from "\./([a-z]+\.js)"`)
	for _, f := range files {
		src, err := fs.ReadFile(os.DirFS("static"), filepath.Base(f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range named.FindAllStringSubmatch(string(src), -1) {
			name := m[1] + m[2]
			if resp, _ := get(t, dashboard.Handler(), "GET", dashboard.Prefix+name, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("%s names %s: %d", f, name, resp.StatusCode)
			}
		}
	}
}
