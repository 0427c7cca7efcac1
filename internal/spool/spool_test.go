package spool_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/spool"
)

var t0 = clocktest.Start()

func entry(i int, target string) spool.Entry {
	return spool.Entry{Target: target, Form: url.Values{"CallSid": {"CA" + string(rune('a'+i))}, "Seq": {string(rune('0' + i))}},
		Received: t0.Add(time.Duration(i) * time.Millisecond)}
}

func open(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	s, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Entries come back in arrival order, survive a reopen (a restart), and go once removed.
func TestSpool_OK(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for i := range 3 {
		if err := s.Put(entry(i, "/twilio/call-status?call=CA1")); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// A write cut short by a crash leaves a .tmp file, which was never answered.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001-0000000001.json.tmp"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	if s.Len() != 3 {
		t.Fatalf("Len after reopen = %d, want 3", s.Len())
	}
	names, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		e, err := s.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		if want := entry(i, ""); e.Form.Get("Seq") != want.Form.Get("Seq") || !e.Received.Equal(want.Received) || e.Target != "/twilio/call-status?call=CA1" {
			t.Errorf("entry %d = %+v, want %+v", i, e, want)
		}
	}
	if err := s.Remove(names[0]); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(); len(got) != 2 || s.Len() != 2 {
		t.Errorf("after Remove: %d entries (Len %d), want 2", len(got), s.Len())
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmps) != 0 {
		t.Errorf("leftover temporary files: %v", tmps)
	}
}

// Two processes (or two replicas configured alike) must not share a spool.
func TestOpen_ErrInUse(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	if s, err := spool.Open(dir); err == nil {
		s.Close()
		t.Fatal("second Open of the same directory succeeded, want an error")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("err = %v, want it to say the directory is in use", err)
	}
}

func TestPut_ErrFull(t *testing.T) {
	s := open(t, t.TempDir())
	s.MaxEntries = 2
	for i := range 2 {
		if err := s.Put(entry(i, "/twilio/call-status")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(entry(2, "/twilio/call-status")); !errors.Is(err, spool.ErrFull) {
		t.Fatalf("Put past MaxEntries: err = %v, want ErrFull", err)
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
}

// store is a handler standing in for callrelay: it takes replays only (it has no signature
// to check), refuses what it was told to (refuse: a form check added since), and stores
// (records) the callbacks while up.
type store struct {
	up     bool
	refuse bool
	got    []string
}

func (h *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rp, ok := spool.ReplayOf(r.Context())
	if !ok || r.Header.Get("X-Twilio-Signature") != "" {
		http.Error(w, "not a replay, or a replay signed again", http.StatusTeapot)
		return
	}
	if err := r.ParseForm(); err != nil || h.refuse {
		http.Error(w, "refused", http.StatusBadRequest)
		return
	}
	if !h.up {
		http.Error(w, "not stored yet", http.StatusServiceUnavailable)
		return
	}
	h.got = append(h.got, r.PostForm.Get("Seq")+"@"+rp.Received.Format(time.RFC3339Nano))
	w.WriteHeader(http.StatusNoContent)
}

func replayer(s *spool.Spool, h http.Handler) *spool.Replayer {
	return &spool.Replayer{Spool: s, Handler: h, Interval: time.Hour, Log: slog.New(slog.DiscardHandler)}
}

// While the store is down nothing is applied and nothing is lost; once it is up, every entry
// is applied once, in arrival order, as a replay with its arrival time.
func TestReplayer_Drain(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	for i := range 5 {
		if err := s.Put(entry(i, "/twilio/call-status?call=CA1&target=0")); err != nil {
			t.Fatal(err)
		}
	}
	h := &store{}
	r := replayer(s, h)

	n, err := r.Drain(ctx)
	if !errors.Is(err, spool.ErrUnstored) || n != 0 || s.Len() != 5 {
		t.Fatalf("Drain while down = %d, %v (Len %d); want 0, ErrUnstored, 5 left", n, err, s.Len())
	}
	h.up = true
	if n, err = r.Drain(ctx); err != nil || n != 5 || s.Len() != 0 {
		t.Fatalf("Drain when up = %d, %v (Len %d); want 5, nil, 0 left", n, err, s.Len())
	}
	var want []string
	for i := range 5 {
		e := entry(i, "")
		want = append(want, e.Form.Get("Seq")+"@"+e.Received.Format(time.RFC3339Nano))
	}
	if strings.Join(h.got, " ") != strings.Join(want, " ") {
		t.Errorf("applied %v, want %v", h.got, want)
	}
	if n, err = r.Drain(ctx); err != nil || n != 0 || len(h.got) != 5 {
		t.Errorf("second Drain = %d, %v, applied %d in all; want nothing more", n, err, len(h.got))
	}
}

// An entry refused for good (a 4xx: a form check added since) is set aside for a person, not
// retried forever nor deleted.
func TestReplayer_SetsAsideRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if err := s.Put(entry(0, "/twilio/transcription")); err != nil {
		t.Fatal(err)
	}
	h := &store{up: true, refuse: true}
	n, err := replayer(s, h).Drain(context.Background())
	if err != nil || n != 0 || s.Len() != 0 {
		t.Fatalf("Drain = %d, %v (Len %d); want 0, nil, none left", n, err, s.Len())
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "rejected", "*.json")); len(kept) != 1 {
		t.Errorf("rejected entries = %v, want the refused one", kept)
	}
}
