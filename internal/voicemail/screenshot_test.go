package voicemail

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
)

// make screenshots: go test ./internal/voicemail/ -run TestEmailInBrowser -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false, "write the voicemail email's screenshots to docs/img")

// Widths the email is read at: a desktop mail client's reading pane and a phone.
const (
	desktopWidth = 1280
	phoneWidth   = 390
)

// chromium finds Debian's headless browser; without it the test skips, except under CI=true,
// where a missing browser fails (.ci/run installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (apt-get install chromium): the email's rendering is not checked")
	}
	t.Skip("chromium not found (apt-get install chromium); skipping the browser test")
	return ""
}

// sampleEmail is the voicemail shown in docs/img: a caller with a name, a transcript.
func sampleEmail(t *testing.T) (html, transcript string) {
	t.Helper()
	transcript = "Hi Dana, it's John from the garage. Your car is ready: the brakes are done and the tyres are changed. " +
		"You can pick it up any time before six tonight, or call me back on this number. Thanks!"
	now := clocktest.Now()
	vm := &callrelay.Voicemail{
		ID: 42, CallSid: "CA1", Number: "+15551230000", From: "+15559870000", CallerName: str("JOHN SMITH"),
		OwnerEmail: "dana@example.com", RecordingSid: "RE0123456789abcdef", DurationSeconds: 38,
		RecordedAt: now.Add(-2 * time.Minute), TranscriptStatus: callrelay.TranscriptCompleted, Transcript: &transcript,
	}
	m, err := compose(vm, envelope{from: "Voicemail <vm@example.com>", zone: mustZone("America/New_York"), sentAt: now,
		link: testLink, linkExpires: now.Add(30 * 24 * time.Hour)}, audio{data: []byte("ID3"), contentType: "audio/mpeg"})
	if err != nil {
		t.Fatal(err)
	}
	return m.HTML, transcript
}

// The email as Chromium renders it: at a phone's width nothing overflows sideways, the play
// button is on screen and carries the signed link, and the transcript is the first thing read.
// With -update-screenshots it also writes docs/img/voicemail-email-{desktop,phone}.png.
func TestEmailInBrowser(t *testing.T) {
	browser := chromium(t)
	html, transcript := sampleEmail(t)
	page := filepath.Join(t.TempDir(), "email.html")
	if err := os.WriteFile(page, []byte(html), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("hide-scrollbars", true), chromedp.Flag("font-render-hinting", "none"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first run starts the browser, which lives as long as its context: no timeout on it.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()

	for _, width := range []int64{phoneWidth, desktopWidth} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			type pageLayout struct {
				ScrollWidth int     `json:"scrollWidth"`
				FirstText   string  `json:"firstText"`
				Href        string  `json:"href"`
				PlayLeft    float64 `json:"playLeft"`
				PlayRight   float64 `json:"playRight"`
				PlayTop     float64 `json:"playTop"`
				PlayHeight  float64 `json:"playHeight"`
				PlayVisible bool    `json:"playVisible"`
				Links       int     `json:"links"`
				Lang        string  `json:"lang"`
				Title       string  `json:"title"`
			}
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 844), chromedp.Navigate("file://"+page)); err != nil {
				t.Fatal(err)
			}
			layout, err := chromedp.Run(ctx, chromedp.Evaluate[pageLayout](`(() => {
					const play = document.getElementById("play");
					const r = play.getBoundingClientRect();
					const s = getComputedStyle(play);
					return {
						scrollWidth: document.documentElement.scrollWidth,
						firstText: document.body.innerText.trim().slice(0, 200),
						href: play.href,
						playLeft: r.left, playRight: r.right, playTop: r.top, playHeight: r.height,
						playVisible: s.visibility === "visible" && s.display !== "none" && r.width > 0,
						links: [...document.querySelectorAll("a")].filter(a => a.href === play.href).length,
						lang: document.documentElement.lang,
						title: document.title,
					};
				})()`))
			if err != nil {
				t.Fatal(err)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if layout.ScrollWidth > int(width) {
				t.Errorf("at %d px the page is %d px wide: it scrolls sideways", width, layout.ScrollWidth)
			}
			if !strings.HasPrefix(layout.FirstText, "“"+transcript[:40]) {
				t.Errorf("the first text read is %q, want the transcript", layout.FirstText)
			}
			if layout.Href != testLink || layout.Links != 1 {
				t.Errorf("play button href %q (%d links to it), want the signed link %q once", layout.Href, layout.Links, testLink)
			}
			// A thumb-sized button, wholly on the first screen.
			if !layout.PlayVisible || layout.PlayLeft < 0 || layout.PlayRight > float64(width) || layout.PlayTop+layout.PlayHeight > 844 || layout.PlayHeight < 40 {
				t.Errorf("play button at x %.0f–%.0f, y %.0f, height %.0f (visible %v): want it whole on the first %d×844 screen, at least 40 px tall",
					layout.PlayLeft, layout.PlayRight, layout.PlayTop, layout.PlayHeight, layout.PlayVisible, width)
			}
			if layout.Lang != "en" || !strings.HasPrefix(layout.Title, "Voicemail from JOHN SMITH, (555) 987-0000 (0:38)") {
				t.Errorf("lang %q, title %q", layout.Lang, layout.Title)
			}
			if *updateScreenshots {
				name := map[int64]string{phoneWidth: "phone", desktopWidth: "desktop"}[width]
				out := filepath.Join("..", "..", "docs", "img", "voicemail-email-"+name+".png")
				if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(out, png, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", out)
			}
		})
	}
}
