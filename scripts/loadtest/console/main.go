// Command console opens N server-sent-event streams of callrelay's console against a running
// callrelay, as N open consoles would, and reports the changes they receive: run it beside
// `make loadtest` to see that open consoles do not move the voice webhook's latency.
//
//	go run ./scripts/loadtest/console -url http://localhost:8080 -token "$CALLRELAY_OPS_TOKEN" -n 50 -duration 30s
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	base := flag.String("url", "http://localhost:8080", "callrelay's base URL")
	token := flag.String("token", os.Getenv("CALLRELAY_OPS_TOKEN"), "the ops token (CALLRELAY_OPS_TOKEN)")
	n := flag.Int("n", 50, "streams to open")
	duration := flag.Duration("duration", 30*time.Second, "how long to keep them open")
	flag.Parse()
	if err := run(*base, *token, *n, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
}

// login logs in once (as a browser does) and returns the session cookie's client.
func login(base, token string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/console/login")
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("no login form at %s/console/login", base)
	}
	resp, err = c.PostForm(base+"/console/login", url.Values{"token": {token}, "csrf": {string(m[1])}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("login: %s (is the ops token right?)", resp.Status)
	}
	return c, nil
}

func run(base, token string, n int, d time.Duration) error {
	c, err := login(base, token)
	if err != nil {
		return err
	}
	c.CheckRedirect = nil
	// Stopped early by a signal (make loadtest stops it when its run ends), it still reports.
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	ctx, cancel := context.WithTimeout(sig, d)
	defer cancel()
	var changes, bytes atomic.Int64
	var open atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/console/events", nil)
			resp, err := c.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					fmt.Fprintf(os.Stderr, "stream %d: %v\n", i, err)
				}
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fmt.Fprintf(os.Stderr, "stream %d: %s\n", i, resp.Status)
				return
			}
			open.Add(1)
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				bytes.Add(int64(len(line) + 1))
				if strings.HasPrefix(line, "event: change") {
					changes.Add(1)
				}
			}
		})
	}
	wg.Wait()
	d = time.Since(start).Round(100 * time.Millisecond)
	fmt.Printf("%d streams opened (of %d) for %s: %d changes received in all (%.1f per stream per second), %d bytes\n",
		open.Load(), n, d, changes.Load(), float64(changes.Load())/float64(max(open.Load(), 1))/d.Seconds(), bytes.Load())
	return nil
}
