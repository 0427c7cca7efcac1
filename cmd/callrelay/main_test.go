package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/signature"
)

// syncBuffer is a log sink the server goroutine writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func setBaseEnv(t *testing.T, databaseURL string) {
	t.Helper()
	t.Setenv("DATABASE_URL", databaseURL)
	t.Setenv("TWILIO_AUTH_TOKEN", "testtoken123")
	t.Setenv("CALLRELAY_OPS_TOKEN", "opstoken456")
	t.Setenv("CALLRELAY_INSECURE_SKIP_SIGNATURE", "false")
	// The defaults are relative to the working directory: keep the tests' files out of the tree.
	t.Setenv("CALLRELAY_SPOOL_DIR", t.TempDir())
	t.Setenv("CALLRELAY_MAIL_DIR", t.TempDir())
}

func TestRun_ErrConfig(t *testing.T) {
	setBaseEnv(t, "postgres://127.0.0.1:1/none")
	t.Setenv("CALLRELAY_TRANSCRIPT_WAIT", "soon")
	err := run(context.Background(), []string{"serve"}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "CALLRELAY_TRANSCRIPT_WAIT") {
		t.Errorf("run = %v, want an error naming CALLRELAY_TRANSCRIPT_WAIT", err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, &syncBuffer{}); err == nil {
		t.Errorf("unknown command: run = nil, want an error")
	}
}

func TestRun_Migrate(t *testing.T) {
	dbURL := pgtest.NewEmptyURL(t)
	setBaseEnv(t, dbURL)
	if err := run(context.Background(), []string{"migrate"}, &syncBuffer{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM numbers`).Scan(&n); err != nil {
		t.Errorf("after migrate, the numbers table is missing: %v", err)
	}
}

// TestRun_Serve starts the real server on a fresh database, serves a signed webhook and
// shuts down cleanly when its context ends.
func TestRun_Serve(t *testing.T) {
	setBaseEnv(t, pgtest.NewEmptyURL(t))
	addr := freeAddr(t)
	t.Setenv("CALLRELAY_ADDR", addr)
	t.Setenv("CALLRELAY_PUBLIC_URL", "http://"+addr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, logs) }()

	base := "http://" + addr
	waitReady(t, base+"/readyz", done)

	req, _ := http.NewRequest(http.MethodPut, base+"/api/numbers/%2B15551230000",
		strings.NewReader(`{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`))
	req.Header.Set("Authorization", "Bearer opstoken456")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT number: %v %v", resp, err)
	}
	form := url.Values{"CallSid": {"CA00000000000000000000000000000001"}, "To": {"+15551230000"}, "From": {"+15559870000"}}
	req, _ = http.NewRequest(http.MethodPost, base+"/twilio/voice", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign("testtoken123", base+"/twilio/voice", form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// An apology or a <Reject/> is a 200 too: look for the forward.
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<Dial") || !strings.Contains(string(body), "+15550001111") {
		t.Errorf("voice webhook: %d %s, want a <Dial> to the target", resp.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after shutdown = %v, want nil", err)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatal("server did not shut down")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("logs lack the clean stop:\n%s", logs)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls readyz until the server answers 200, or fails if run returns first.
func waitReady(t *testing.T, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("run returned before serving: %v", err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready in 30s", url)
}
