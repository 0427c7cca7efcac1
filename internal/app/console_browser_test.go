package app_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/twiliosim"
)

// make screenshots: the console's pages into docs/img (go test ./internal/app -run
// TestConsoleInBrowser -update-console-screenshots).
var consoleShots = flag.Bool("update-console-screenshots", false, "write the console's and the inbox's screenshots to docs/img")

const consoleLinkSecret = "console-test-link-secret"

// consoleLogs is the log of the relay under test, shown when a wait fails.
var consoleLogs = &logBuffer{}

func lastBytes(s string, n int) string { return s[max(len(s)-n, 0):] }

// browserPath finds Debian's chromium; without it the browser tests skip, except under
// CI=true, where they fail (.ci/run installs it).
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (apt-get install chromium): the console is not tested")
	}
	t.Skip("chromium not found (apt-get install chromium); skipping the console's browser test")
	return ""
}

// browser starts a headless chromium; each newSession is a browser context of its own (its
// own cookies: another person).
type browser struct {
	t    *testing.T
	root context.Context
}

func startBrowser(t *testing.T) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browserPath(t)), chromedp.NoSandbox,
		chromedp.Flag("hide-scrollbars", true), chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, root: bctx}
}

func (b *browser) newSession() context.Context {
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate("about:blank")); err != nil {
		b.t.Fatal(err)
	}
	return ctx
}

// do runs steps with a deadline.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates js in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitFor waits until js is true in the page, through navigations (a form's post and the
// redirect after it).
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("waiting for %s: %v\npage:\n%s\ncallrelay's log (its end):\n%s", what, err, body, lastBytes(consoleLogs.String(), 3000))
		}
	}
}

// screenshot writes the page into docs/img with -update-console-screenshots, after checking
// that nothing scrolls sideways at that width.
func screenshot(t *testing.T, ctx context.Context, name string, width int64) {
	t.Helper()
	do(t, ctx, chromedp.EmulateViewport(width, 900))
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > int(width) {
		t.Errorf("%s at %d px is %d px wide: it scrolls sideways", name, width, w)
	}
	if !*consoleShots {
		do(t, ctx, chromedp.EmulateViewport(1280, 900))
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join("..", "..", "docs", "img", name+".png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.EmulateViewport(1280, 900))
}

func login(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(base+"/console/login"))
	eval[bool](t, ctx, `(document.getElementById("token").value = `+fmt.Sprintf("%q", opsToken)+`, document.querySelector("form button").click(), true)`)
	waitFor(t, ctx, "the live view", `location.pathname === "/console" && !!document.getElementById("live-calls")`)
}

// The console and the inbox in a real browser, against a whole callrelay and the simulator:
// log in; a call arrives live; hold and resume its caller (the simulator's caller hears the
// hold music); the timeline; a voicemail played and marked handled while a second session sees
// it handled without a reload; a routing refused field by field; the owner's link and an
// expired one.
func TestConsoleInBrowser(t *testing.T) {
	b := startBrowser(t)
	r := startRelay(t, func(c *config.Config, o *app.Options) {
		c.LinkSecret = consoleLinkSecret
		c.RecordingsURL = "file://" + t.TempDir()
	})
	consoleLogs = r.logs
	ops := b.newSession()
	login(t, ops, r.url)
	screenshot(t, ops, "console-login-live-empty", 390)

	// A call arrives and shows up without a reload.
	sc, err := twiliosim.ParseScenario([]byte(`
name: console hold
number: "+15551230020"
routing:
  owner_email: dana@example.com
  mode: conference
  timeout_seconds: 15
  targets:
    - {type: phone, to: "+15550001111", screen: off}
targets:
  "+15550001111": {answer_after: 3}
caller:
  hangup_at: 500
expect:
  call_status: completed
  hold: {caller: false, callee: false}
  heard:
    caller: ["talking (conference)", "hold music (holdUrl", "talking (conference)"]
`))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *twiliosim.Result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := r.sim.Run(ctx, sc, 15*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	waitFor(t, ops, "the call, live", `!!document.querySelector("#live-calls article.call [data-action=hold-caller]") && /in-progress/.test(document.querySelector("#live-calls article.call").innerText)`)
	screenshot(t, ops, "console-live", 1280)
	screenshot(t, ops, "console-live-phone", 390)
	sid := strings.TrimPrefix(eval[string](t, ops, `document.querySelector("#live-calls article.call").id`), "call-")

	eval[bool](t, ops, `(document.querySelector("[data-action=hold-caller]").click(), true)`)
	waitFor(t, ops, "the caller on hold", `!!document.querySelector("#call-`+sid+` [data-hold=caller]") && !!document.querySelector("[data-action=resume-caller]")`)
	eval[bool](t, ops, `(document.querySelector("[data-action=resume-caller]").click(), true)`)
	waitFor(t, ops, "the caller resumed", `!!document.querySelector("#call-`+sid+` [data-action=hold-caller]") && !document.querySelector("#call-`+sid+` [data-hold=caller]")`)

	// The timeline has the hold and the resume, by the console.
	do(t, ops, chromedp.Navigate(r.url+"/console/calls/"+sid))
	waitFor(t, ops, "the timeline", `/by ops \(console\)/.test(document.getElementById("timeline-`+sid+`").innerText)`)
	timeline := eval[string](t, ops, `document.getElementById("timeline-`+sid+`").innerText`)
	if strings.Count(timeline, "by ops (console)") < 2 {
		t.Errorf("timeline lacks the hold and the resume:\n%s", timeline)
	}
	screenshot(t, ops, "console-call", 1280)

	res := <-done
	if res == nil || !res.OK() {
		var sb strings.Builder
		if res != nil {
			res.Print(&sb)
		}
		t.Fatalf("the held call did not go as expected:\n%s", sb.String())
	}

	// History filters.
	do(t, ops, chromedp.Navigate(r.url+"/console/calls?number=%2B15551230020&status=completed"))
	waitFor(t, ops, "the call in the history", `!!document.getElementById("row-`+sid+`")`)
	screenshot(t, ops, "console-history", 1280)
	do(t, ops, chromedp.Navigate(r.url+"/console/calls?number=555&from=yesterday"))
	waitFor(t, ops, "the filters' errors", `!!document.getElementById("number-error") && !!document.getElementById("from-error")`)

	// A voicemail: played in one session, marked handled, seen handled in another at once.
	vmSc, err := twiliosim.LoadScenario("../../testdata/scenarios/voicemail-transcribed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if res := playScenario(t, r, vmSc, 15*time.Second); !res.OK() {
		var sb strings.Builder
		res.Print(&sb)
		t.Fatalf("voicemail scenario:\n%s", sb.String())
	}
	email := mailtest.Parse(t, r.smtp.Next(30*time.Second).Data)
	link := regexp.MustCompile(`https?://\S+/inbox/voicemails/\d+\?\S+`).FindString(email.Text)
	if link == "" {
		t.Fatalf("the voicemail email has no inbox link:\n%s", email.Text)
	}
	id := regexp.MustCompile(`/inbox/voicemails/(\d+)`).FindStringSubmatch(link)[1]

	second := b.newSession()
	login(t, second, r.url)
	for _, s := range []context.Context{ops, second} {
		do(t, s, chromedp.Navigate(r.url+"/console/voicemails"))
		waitFor(t, s, "the new voicemail", `document.getElementById("vm-`+id+`") && document.getElementById("vm-`+id+`").dataset.status === "new"`)
	}
	// The player's audio is served (the stored copy: Range answers 206).
	waitFor(t, ops, "the stored copy", `!!document.querySelector("#vm-`+id+` audio")`)
	// The player's audio: callrelay's stored copy once the copy job has run (streamed from
	// Twilio, 200, until then), served with Range (206).
	c, cancel := context.WithTimeout(ops, 40*time.Second)
	got, err := chromedp.Run(c, chromedp.Evaluate[string](`(async () => {
		const src = document.querySelector("#vm-`+id+` audio").src;
		for (let i = 0; i < 300; i++) {
			const r = await fetch(src, {headers: {Range: "bytes=0-99"}});
			const got = r.status + " " + r.headers.get("Content-Type");
			if (r.status !== 200) return got;
			await new Promise(ok => setTimeout(ok, 100));
		}
		return "still 200";
	})()`, chromedp.EvalAwaitPromise))
	cancel()
	if err != nil || !strings.HasPrefix(got, "206 audio/") {
		t.Fatalf("the player's audio with Range answers %q (%v), want 206 audio/…", got, err)
	}
	waitFor(t, ops, "the player playing", `(() => { const a = document.querySelector("#vm-`+id+` audio"); if (a.paused) a.play().catch(() => {}); return a.readyState >= 2 && a.duration > 0; })()`)
	screenshot(t, ops, "console-voicemails", 1280)
	eval[bool](t, ops, `(document.querySelector("#vm-`+id+` [data-action=handled]").click(), true)`)
	waitFor(t, ops, "handled, in this session", `document.getElementById("vm-`+id+`") && document.getElementById("vm-`+id+`").dataset.status === "handled"`)
	// No reload in the second session: the marker survives only if the page was not reloaded.
	eval[bool](t, second, `(window.__noReload = true)`)
	waitFor(t, second, "handled, in the other session", `window.__noReload === true && document.getElementById("vm-`+id+`").dataset.status === "handled" && /Handled by ops/.test(document.getElementById("vm-`+id+`").innerText)`)

	// A routing with an invalid field: the API's message next to it.
	do(t, ops, chromedp.Navigate(r.url+"/console/numbers/%2B15551230005"))
	waitFor(t, ops, "the routing form", `!!document.getElementById("f-timeout_seconds")`)
	screenshot(t, ops, "console-number", 1280)
	eval[bool](t, ops, `(document.getElementById("f-timeout_seconds").value = "3", document.querySelector("form.routing button[type=submit]").click(), true)`)
	waitFor(t, ops, "the field's error", `!!document.getElementById("e-timeout_seconds") && document.getElementById("f-timeout_seconds").getAttribute("aria-invalid") === "true"`)
	if msg := eval[string](t, ops, `document.getElementById("e-timeout_seconds").innerText`); !strings.Contains(msg, "timeout_seconds") {
		t.Errorf("timeout_seconds error = %q, want the API's message", msg)
	}
	screenshot(t, ops, "console-number-error", 390)

	// The owner follows the email's link: no login, their voicemail, handled already.
	owner := b.newSession()
	do(t, owner, chromedp.Navigate(link))
	waitFor(t, owner, "the owner's voicemail", `!!document.getElementById("vm-`+id+`") && /lease on Elm Street/.test(document.body.innerText)`)
	if got := eval[string](t, owner, `document.getElementById("vm-`+id+`").dataset.status`); got != "handled" {
		t.Errorf("owner sees status %q, want handled", got)
	}
	screenshot(t, owner, "inbox-voicemail-phone", 390)
	eval[bool](t, owner, `(document.querySelector("nav[aria-label=Inbox] a").click(), true)`)
	waitFor(t, owner, "the owner's inbox", `location.pathname === "/inbox" && !!document.getElementById("missed") && !!document.getElementById("vm-`+id+`")`)
	screenshot(t, owner, "inbox", 390)

	// An expired link says so.
	pub, _ := url.Parse(r.url)
	old := recording.NewLinks(pub, []string{consoleLinkSecret}, time.Hour, func() time.Time { return clocktest.Now().Add(-2 * time.Hour) })
	do(t, owner, chromedp.Navigate(old.OwnerPageURL("dana@example.com", mustInt(t, id))))
	waitFor(t, owner, "the expired page", `/has expired/.test(document.querySelector("h1").innerText)`)
	screenshot(t, owner, "inbox-expired", 390)
	// An altered one is refused.
	do(t, owner, chromedp.Navigate(strings.Replace(link, "sig=", "sig=x", 1)))
	waitFor(t, owner, "the invalid page", `/not valid/.test(document.querySelector("h1").innerText)`)
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The session cookie's flags, the CSRF checks, logout, and the CSP, as a browser's requests
// would meet them (no browser needed).
func TestConsoleSecurity(t *testing.T) {
	r := startRelay(t)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := client.Get(r.url + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	post := func(path string, form url.Values, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, r.url+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get("/console"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Errorf("GET /console without a session = %d to %q, want 303 to the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	page := get("/console/login")
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	u, _ := url.Parse(r.url + "/console/login")
	var loginCSRF string
	for _, c := range jar.Cookies(u) {
		if c.Name == "callrelay_login" {
			loginCSRF = c.Value
		}
	}
	if loginCSRF == "" {
		t.Fatal("the login page set no CSRF cookie")
	}
	// Without the CSRF token, from another site, with a wrong token: refused.
	if resp := post("/console/login", url.Values{"token": {opsToken}}, r.url); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without CSRF token = %d, want 403", resp.StatusCode)
	}
	if resp := post("/console/login", url.Values{"token": {opsToken}, "csrf": {loginCSRF}}, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login from another origin = %d, want 403", resp.StatusCode)
	}
	if resp := post("/console/login", url.Values{"token": {"wrong"}, "csrf": {loginCSRF}}, r.url); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("login with a wrong token = %d, want 401", resp.StatusCode)
	}
	get("/console/login") // a fresh CSRF cookie
	for _, c := range jar.Cookies(u) {
		if c.Name == "callrelay_login" {
			loginCSRF = c.Value
		}
	}
	resp := post("/console/login", url.Values{"token": {opsToken}, "csrf": {loginCSRF}}, r.url)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %d, want 303", resp.StatusCode)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "callrelay_console" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("login set no session cookie")
	}
	if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.MaxAge <= 0 || session.MaxAge > 24*3600 || session.Secure {
		t.Errorf("session cookie HttpOnly=%v SameSite=%v MaxAge=%d Secure=%v: want HttpOnly, Strict, expiring, not Secure on http",
			session.HttpOnly, session.SameSite, session.MaxAge, session.Secure)
	}
	if resp := get("/console"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /console with the session = %d", resp.StatusCode)
	}
	// A state-changing form without the session's CSRF token is refused.
	if resp := post("/console/calls/CA0123/hold", url.Values{"party": {"caller"}}, r.url); resp.StatusCode != http.StatusForbidden {
		t.Errorf("hold without CSRF token = %d, want 403", resp.StatusCode)
	}
	if resp := post("/console/logout", url.Values{"csrf": {"forged"}}, r.url); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout with a forged CSRF token = %d, want 403", resp.StatusCode)
	}
	// Logout with the token (read from the page) ends the session everywhere.
	req, _ := http.NewRequest(http.MethodGet, r.url+"/console", nil)
	pg, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(pg.Body)
	pg.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	if resp := post("/console/logout", url.Values{"csrf": {string(m[1])}}, r.url); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout = %d, want 303", resp.StatusCode)
	}
	// The old cookie, replayed, no longer works.
	req, _ = http.NewRequest(http.MethodGet, r.url+"/console", nil)
	req.AddCookie(&http.Cookie{Name: "callrelay_console", Value: session.Value})
	resp, err = (&http.Client{CheckRedirect: client.CheckRedirect}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /console with a logged-out cookie = %d, want 303 to the login", resp.StatusCode)
	}

	// Behind https, the cookie is Secure.
	rs := startRelay(t, func(c *config.Config, _ *app.Options) {
		c.PublicURL = config.URL{URL: &url.URL{Scheme: "https", Host: "relay.example.com"}}
	})
	jar2, _ := cookiejar.New(nil)
	c2 := &http.Client{Jar: jar2, CheckRedirect: client.CheckRedirect}
	resp, err = c2.Get(rs.url + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s behind https is not Secure", c.Name)
		}
	}
	if len(resp.Cookies()) == 0 {
		t.Error("the login page set no cookie")
	}
}
