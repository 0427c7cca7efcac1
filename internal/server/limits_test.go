package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/server"
	"github.com/callrelay/callrelay/internal/signature"
)

// The listener's limits, tested over TCP on the http.Server the binary builds
// (server.NewHTTPServer) with its production values.

// serveTCP serves h on a loopback port with the production http.Server and returns its address.
func serveTCP(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.NewHTTPServer(ln.Addr().String(), h, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// Slowloris: a client that sends its request a byte at a time holds a connection (and a
// goroutine) only until the server's timeouts cut it, and no handler runs for it.
func TestSlowClients(t *testing.T) {
	s := withStoredCall(t)
	addr := serveTCP(t, s.handler)
	before := dbState(t, s)

	form := inbound("CA00000000000000000000000000000930")
	body := form.Encode()
	head := "POST /twilio/voice HTTP/1.1\r\nHost: relay.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"X-Twilio-Signature: " + signature.Sign(authToken, publicURL+"/twilio/voice", form) + "\r\n"
	for _, tc := range []struct {
		name  string
		sent  string        // at once
		drip  string        // then a byte every tick, repeated
		limit time.Duration // the timeout that must cut it
	}{
		{"silent after connecting", "", "", server.ReadHeaderTimeout},
		{"headers a byte at a time", head, "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", server.ReadHeaderTimeout},
		{"body a byte at a time", head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)+4096), body + "&", server.ReadTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, tc.sent); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			if tc.drip != "" {
				go func() {
					tick := time.NewTicker(200 * time.Millisecond)
					defer tick.Stop()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						if _, err := conn.Write([]byte{tc.drip[i%len(tc.drip)]}); err != nil {
							return // cut by the server
						}
					}
				}()
			}
			// The server ends the exchange: by closing, or by answering and closing.
			if err := conn.SetReadDeadline(start.Add(tc.limit + 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(conn)
			elapsed := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %s: the server did not cut the slow client", elapsed)
			}
			if elapsed < tc.limit-500*time.Millisecond || elapsed > tc.limit+2*time.Second {
				t.Errorf("cut after %s, want about %s", elapsed.Round(time.Millisecond), tc.limit)
			}
			if status, _, _ := strings.Cut(string(got), "\r\n"); len(got) > 0 && !strings.HasPrefix(status, "HTTP/1.1 4") {
				t.Errorf("answer %q, want nothing or a 4xx", status)
			}
		})
	}
	t.Cleanup(func() { assertUnchanged(t, s, before, "slow clients") })
}

func TestHeaderAndBodyLimits(t *testing.T) {
	s := withStoredCall(t)
	addr := serveTCP(t, s.handler)
	before := dbState(t, s)

	// exchange sends raw bytes and reads the answer's status line.
	exchange := func(req []byte) string {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		// The server may answer and stop reading before the request is all sent.
		go func() { _, _ = conn.Write(req) }()
		status, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		return strings.TrimSpace(status)
	}
	headers := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "X-H-%d: v\r\n", i)
		}
		return b.String()
	}
	form := inbound("CA00000000000000000000000000000931")
	body := form.Encode()
	signed := "POST /twilio/voice HTTP/1.1\r\nHost: relay.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"X-Twilio-Signature: " + signature.Sign(authToken, publicURL+"/twilio/voice", form) + "\r\n"

	// Ten thousand headers (about 110 KiB) pass MaxHeaderBytes: 431 before any handler.
	many := headers(10000)
	if len(many) <= server.MaxHeaderBytes+4096 { // net/http allows 4 KiB of slack
		t.Fatalf("only %d bytes of headers", len(many))
	}
	if got := exchange([]byte(signed + many + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body)); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("10000 headers: %q, want 431", got)
	}
	assertUnchanged(t, s, before, "a request with too many headers")
	// So does one huge header.
	if got := exchange([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 2*server.MaxHeaderBytes) + "\r\n\r\n")); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("a 128 KiB header: %q, want 431", got)
	}
	// A thousand headers fit, and a signed webhook carrying them is served as usual.
	if got := exchange([]byte(signed + headers(1000) + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body)); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("1000 headers: %q, want 200", got)
	}

	// A streamed (chunked) body without end is cut at the limit with 413.
	before = dbState(t, s)
	endless := io.MultiReader(strings.NewReader(body+"&Pad="), &repeatReader{b: 'p', n: 1 << 20})
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/twilio/voice", endless)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, publicURL+"/twilio/voice", form))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a 1 MiB chunked body: %v, want a 413 answer", err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || len(bytes.TrimSpace(answer)) == 0 {
		t.Errorf("a 1 MiB chunked body: %d %q, want 413 saying why", res.StatusCode, answer)
	}
	assertUnchanged(t, s, before, "an endless body")
}

// repeatReader reads n copies of b.
type repeatReader struct {
	b byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.n)
	for i := range n {
		p[i] = r.b
	}
	r.n -= n
	return n, nil
}
