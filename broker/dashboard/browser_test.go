package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/broker/dashboard"
	"github.com/presenced/presenced/protocol"
	"github.com/presenced/presenced/protocol/client"
	"go.uber.org/zap/zaptest"
)

// chromiumPath is Debian's chromium package. The browser test skips without
// it on a developer machine; in CI (CI set) a missing browser fails.
const chromiumPath = "/usr/bin/chromium"

// screenshotsEnv names a directory that receives screenshots of the pages,
// for people to look at; unset, they go to the test's temporary directory
// (the test logs where).
const screenshotsEnv = "PRESENCED_DASHBOARD_SCREENSHOTS"

const (
	adminToken = "test-admin-token-0123456789"
	jwtSecret  = "test-jwt-secret-test-jwt-secret-0123"
	stepLimit  = 30 * time.Second // every wait of the test is bounded by it
	// historyPeriod is the broker's sample period here, instead of 10 s.
	historyPeriod = 250 * time.Millisecond
)

// The charts of the last hour, on the overview and on a group's page.
const (
	serverHour = `#overview-history .chart[data-range="hour"] svg`
	serverDay  = `#overview-history .chart[data-range="day"] svg`
	groupHour  = `#group-history .chart[data-range="hour"] svg`
)

// The group's name and a status text hold markup: the page must show them
// as text.
const (
	teamName   = `Team <b>&amp;</b> "friends"`
	statusText = `<img src=x id=injected> lunch`
)

func TestDashboardInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs %s for the browser test: %v", chromiumPath, err)
		}
		t.Skipf("%s not installed: %v", chromiumPath, err)
	}
	base := startServer(t)
	api := base + "/v1"
	for _, u := range []string{"alice", "bob", "carol"} {
		mustCall(t, "POST", api+"/users", adminToken, map[string]any{"id": u, "username": u, "name": strings.ToUpper(u[:1]) + u[1:]}, nil)
	}
	mustCall(t, "POST", api+"/groups", adminToken, map[string]any{"id": "team", "name": teamName}, nil)
	mustCall(t, "POST", api+"/groups", adminToken, map[string]any{"id": "other", "name": "Other"}, nil)
	mustCall(t, "PUT", api+"/groups/team/members/alice", adminToken, map[string]any{"role": "owner"}, nil)
	mustCall(t, "PUT", api+"/groups/team/members/bob", adminToken, nil, nil)
	mustCall(t, "PUT", api+"/groups/other/members/carol", adminToken, nil, nil)
	var tok struct {
		Token string `json:"token"`
	}
	mustCall(t, "POST", api+"/tokens", adminToken,
		map[string]any{"name": "dashboard", "scopes": []string{"presence:read", "membership:read"}}, &tok)

	b := newBrowser(t)

	t.Run("rejected token", func(t *testing.T) {
		b.run(t, "sign in with a wrong token",
			chromedp.Navigate(base+dashboard.Prefix),
			chromedp.WaitVisible(chromedp.CSS("#signin-form")),
			chromedp.SetValue(chromedp.CSS("#token"), "pd_not-a-real-token"),
			chromedp.Click(chromedp.CSS("#signin-submit")),
			chromedp.WaitVisible(chromedp.CSS("#signin-error")))
		if msg := b.text(t, "#signin-error"); !strings.Contains(msg, "rejected") {
			t.Fatalf("sign-in error %q", msg)
		}
		b.screenshot(t, "signin.png")
	})

	t.Run("live counts", func(t *testing.T) {
		b.run(t, "sign in with a presence:read token",
			chromedp.SetValue(chromedp.CSS("#token"), tok.Token),
			chromedp.Click(chromedp.CSS("#signin-submit")),
			chromedp.WaitVisible(chromedp.CSS("#overview-view")))
		b.waitAttr(t, `#counts tr[data-group="team"]`, "data-online", "0")
		b.waitAttr(t, `#counts tr[data-group="other"]`, "data-total", "1")
		if who := b.text(t, "#whoami"); !strings.Contains(who, "API token") {
			t.Errorf("whoami %q", who)
		}
		// The server's online history: samples of nobody online, a flat
		// line on the axis.
		b.waitAttr(t, serverHour, "data-last", "0")
		b.waitAttr(t, serverHour, "data-step", fmt.Sprint(historyPeriod.Milliseconds()))
		before := b.plot(t, serverHour)
		if len(before.ys) == 0 || slices.Max(before.ys) != slices.Min(before.ys) {
			t.Fatalf("nobody online, and the line is not flat: %v", before.ys)
		}
		b.screenshot(t, "history-before.png")

		alice := dialMember(t, base, "alice")
		b.waitAttr(t, `#counts tr[data-group="team"]`, "data-online", "1")
		b.waitAttr(t, `#busiest li[data-group="team"]`, "data-online", "1")
		// The name shows as text, with no element made of it.
		if name := b.text(t, `#counts tr[data-group="team"] .group-link`); !strings.HasPrefix(name, teamName) {
			t.Errorf("group link %q, want it to start with %q", name, teamName)
		}
		b.mustBeAbsent(t, "#counts b")
		// Stats are polled: the dashboard's observer connection and alice's.
		b.waitAttr(t, "#stat-sessions", "data-value", "1")
		b.waitAttr(t, "#stat-connections", "data-value", "2")
		b.waitAttr(t, "#stat-groups", "data-value", "2")
		b.screenshot(t, "overview.png")

		// alice's sample reaches the plot: the line rises at its end (SVG
		// y grows downwards), and the chart's pixels change.
		b.waitAttr(t, serverHour, "data-last", "1")
		after := b.plot(t, serverHour)
		if n := len(after.ys); n < 2 || after.ys[n-1] >= before.ys[0] || after.ys[n-1] >= after.ys[0] {
			t.Errorf("the line did not rise when alice came online: before %v, after %v", before.ys, after.ys)
		}
		if bytes.Equal(before.png, after.png) {
			t.Error("the chart looks the same before and after alice came online")
		}
		b.waitAttr(t, serverDay, "data-state", "drawn")
		b.waitAttr(t, `#overview-history [data-field="peak"]`, "data-value", "1")
		b.screenshot(t, "history-after.png")

		t.Run("group page", func(t *testing.T) {
			b.run(t, "open the group from the table",
				chromedp.Click(chromedp.CSS(`#counts tr[data-group="team"] a`)),
				chromedp.WaitVisible(chromedp.CSS("#group-view")))
			b.waitAttr(t, `#members-body tr[data-user="alice"]`, "data-status", "online")
			b.waitAttr(t, `#members-body tr[data-user="bob"]`, "data-status", "offline")
			b.waitAttr(t, "#group-counts", "data-online", "1")
			b.waitAttr(t, groupHour, "data-last", "1")
			if title := b.text(t, "#group-title"); title != teamName {
				t.Errorf("title %q, want %q", title, teamName)
			}
			b.mustBeAbsent(t, "#group-title b")
			b.waitText(t, `#members-body tr[data-user="alice"] td[data-field=name]`, "Alice")
			b.waitText(t, `#members-body tr[data-user="alice"] td[data-field=role]`, "owner")

			ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
			defer cancel()
			if err := alice.SetStatus(ctx, protocol.StatusBusy, statusText, 0); err != nil {
				t.Fatal(err)
			}
			b.waitAttr(t, `#members-body tr[data-user="alice"]`, "data-status", "busy")
			b.waitText(t, `#members-body tr[data-user="alice"] td[data-field=text]`, statusText)
			b.mustBeAbsent(t, "#injected")
			b.screenshot(t, "group.png")

			// alice leaves: after the grace period she is offline, here and
			// in the counts.
			_ = alice.Close()
			b.waitAttr(t, `#members-body tr[data-user="alice"]`, "data-status", "offline")
			b.waitAttr(t, "#group-counts", "data-online", "0")
			b.run(t, "back to the overview",
				chromedp.Click(chromedp.CSS(".crumbs a")),
				chromedp.WaitVisible(chromedp.CSS("#overview-view")))
			b.waitAttr(t, `#counts tr[data-group="team"]`, "data-online", "0")
		})
	})

	t.Run("user token", func(t *testing.T) {
		b.run(t, "sign out",
			chromedp.Click(chromedp.CSS("#sign-out")),
			chromedp.WaitVisible(chromedp.CSS("#signin-form")))
		b.run(t, "sign in as bob",
			chromedp.SetValue(chromedp.CSS("#token"), userJWT(t, "bob")),
			chromedp.Click(chromedp.CSS("#signin-submit")),
			chromedp.WaitVisible(chromedp.CSS("#overview-view")))
		// bob sees his own group, where his dashboard makes him present,
		// and not the other one; totals need presence:read.
		b.waitAttr(t, `#counts tr[data-group="team"]`, "data-online", "1")
		b.mustBeAbsent(t, `#counts tr[data-group="other"]`)
		b.run(t, "stats note", chromedp.WaitVisible(chromedp.CSS("#stats-note")))
		b.run(t, "history note", chromedp.WaitVisible(chromedp.CSS(`#overview-history [data-field="note"]`)))
		if who := b.text(t, "#whoami"); !strings.Contains(who, "bob") {
			t.Errorf("whoami %q", who)
		}
		// A reload keeps the tab signed in.
		b.run(t, "reload",
			chromedp.Reload(),
			chromedp.WaitVisible(chromedp.CSS("#overview-view")))
		b.waitAttr(t, `#counts tr[data-group="team"]`, "data-online", "1")
		b.screenshot(t, "user.png")
		b.run(t, "a group bob is not in",
			chromedp.Navigate(base+dashboard.Prefix+"#/groups/other"),
			chromedp.WaitVisible(chromedp.CSS("#group-error")))
		if msg := b.text(t, "#group-error"); !strings.Contains(msg, "may not see") {
			t.Errorf("group error %q", msg)
		}
	})

	b.checkProblems(t)
}

// startServer runs a broker with its data in a temporary directory and
// returns the base URL serving both the API and the dashboard. A broker
// that does not mount the dashboard yet is fronted by a proxy on another
// port that does; the browser sees one origin either way.
func startServer(t *testing.T) string {
	t.Helper()
	s, err := broker.New(broker.Config{
		DataDir:       t.TempDir(),
		HTTPAddr:      "127.0.0.1:0",
		AdminToken:    adminToken,
		JWTSecret:     jwtSecret,
		Grace:         200 * time.Millisecond,
		HistoryPeriod: historyPeriod,
		Logger:        zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	base := broker.BaseURL(s.Addr())
	resp, err := http.Get(base + dashboard.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Security-Policy") == dashboard.ContentSecurityPolicy {
		return base
	}
	target, _ := url.Parse(base)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the broker compares the WebSocket's Origin with Host
	}}
	mux := http.NewServeMux()
	mux.Handle(dashboard.Prefix, dashboard.Handler())
	mux.Handle("/", proxy)
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	return front.URL
}

// mustCall does one API request with a bearer token and decodes the JSON
// answer into out (when not nil); a status other than 2xx fails the test.
func mustCall(t *testing.T, method, u, token string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
	}
}

func userJWT(t *testing.T, user string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: user, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dialMember connects user's WebSocket, which makes the user present.
func dialMember(t *testing.T, base, user string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
	defer cancel()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/ws", &client.Options{Token: userJWT(t, user)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// browser is one headless Chromium tab. It records what should never
// happen on the dashboard: script exceptions, console errors, and
// violations of the Content-Security-Policy.
type browser struct {
	tab   context.Context
	shots string // where screenshots go
	plots int    // charts read so far

	mu sync.Mutex
	// mu guards the following fields.
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelTab)
	b := &browser{tab: tab, shots: os.Getenv(screenshotsEnv)}
	if b.shots == "" {
		b.shots = t.TempDir()
	}
	// Start the browser now with a context without deadline (a deadline on
	// the first use would bound the browser's life), so that a browser that
	// cannot start fails here.
	if err := chromedp.Listen(tab, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			b.problem("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				b.problem("console.%s: %s", e.Type, strings.Join(args, " "))
			}
		case *log.EventEntryAdded:
			// Network errors are expected: the rejected sign-in answers 401.
			if e.Entry.Source == log.EntrySourceSecurity || e.Entry.Source == log.EntrySourceJavascript ||
				strings.Contains(e.Entry.Text, "Content Security Policy") {
				b.problem("%s %s: %s", e.Entry.Source, e.Entry.Level, e.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return b
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

func (b *browser) checkProblems(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("page: %s", p)
	}
}

// run runs actions in the tab, bounded by stepLimit.
func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, stepLimit)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(t, "%s: %v", what, err)
	}
}

// waitAttr waits until the element sel has attribute attr equal to want.
func (b *browser) waitAttr(t *testing.T, sel, attr, want string) {
	t.Helper()
	b.waitJS(t, fmt.Sprintf("%s %s=%q", sel, attr, want),
		fmt.Sprintf(`document.querySelector(%q)?.getAttribute(%q) === %q`, sel, attr, want),
		fmt.Sprintf(`document.querySelector(%q)?.getAttribute(%q) ?? "(no element or attribute)"`, sel, attr))
}

// waitText waits until the text of the element sel is want.
func (b *browser) waitText(t *testing.T, sel, want string) {
	t.Helper()
	b.waitJS(t, fmt.Sprintf("%s text %q", sel, want),
		fmt.Sprintf(`document.querySelector(%q)?.textContent === %q`, sel, want),
		fmt.Sprintf(`document.querySelector(%q)?.textContent ?? "(no element)"`, sel))
}

// waitJS waits until the expression cond is true; on timeout it reports
// what the expression last shows.
func (b *browser) waitJS(t *testing.T, what, cond, last string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, stepLimit)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(stepLimit)))
	if err == nil {
		return
	}
	ctx2, cancel2 := context.WithTimeout(b.tab, 5*time.Second)
	defer cancel2()
	got, _ := chromedp.Run(ctx2, chromedp.Evaluate[string](last))
	b.fail(t, "waiting for %s: %v (now %q)", what, err, got)
}

// fail ends the test with what the page shows and what went wrong in it.
func (b *browser) fail(t *testing.T, format string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 5*time.Second)
	defer cancel()
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash + "\n" + document.body.innerText`)); err == nil {
		t.Logf("page %s", text)
	}
	b.checkProblems(t)
	t.Fatalf(format, args...)
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, stepLimit)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

func (b *browser) mustBeAbsent(t *testing.T, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, stepLimit)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		t.Fatalf("count %s: %v", sel, err)
	}
	if n != 0 {
		t.Fatalf("%d elements match %s", n, sel)
	}
}

// screenshot saves the page in the browser's screenshot directory.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, stepLimit)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b.save(t, name, png)
}

func (b *browser) save(t *testing.T, name string, png []byte) {
	t.Helper()
	path := filepath.Join(b.shots, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// plotShot is what a chart draws: the y of every point of its line, in
// SVG units (growing downwards), and a screenshot of the chart.
type plotShot struct {
	ys  []float64
	png []byte
}

// plot reads the chart whose <svg> is sel and saves its screenshot.
func (b *browser) plot(t *testing.T, sel string) plotShot {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, stepLimit)
	defer cancel()
	ys, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(
		`[...(document.querySelector(%q + " path.line")?.getAttribute("d") ?? "").matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]))`, sel)))
	if err != nil {
		b.fail(t, "read the line of %s: %v", sel, err)
	}
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.fail(t, "screenshot of %s: %v", sel, err)
	}
	b.plots++
	b.save(t, fmt.Sprintf("chart-%d.png", b.plots), png)
	return plotShot{ys, png}
}
