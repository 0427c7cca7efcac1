package server_test

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestConsole_badURL: a console or inbox URL whose path or query is not text answers 400 before
// anything else (the session, the store, which would fail with a 500).
func TestConsole_badURL(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/console/calls/%00", "/console/calls/%FF", "/console/numbers?after=%00",
		"/inbox/voicemails/%00", "/console/login?next=%FF"} {
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", path, rec.Code)
		}
	}
}

// TestConsole_logoutEndsStreams: a logout (here, as on another replica: the session row gone)
// ends a live stream already open with that session at its next beat.
func TestConsole_logoutEndsStreams(t *testing.T) {
	s := newTestServer(t, func(st *setup) { st.streamBeat = 20 * time.Millisecond })
	ctx := context.Background()
	id := sha256.Sum256([]byte("sessiontoken"))
	if err := s.db.CreateSession(ctx, id[:], "csrftoken", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.handler)
	defer srv.Close()
	// A stream that outlives this bound failed the test: it was never ended.
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, srv.URL+"/console/events", nil)
	req.AddCookie(&http.Cookie{Name: "callrelay_console", Value: "sessiontoken"})
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /console/events = %d, want 200 with a live session", resp.StatusCode)
	}
	first := make([]byte, len("retry:"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("the stream's first bytes: %v", err)
	}
	if err := s.db.DeleteSession(ctx, id[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("the stream did not end after the logout: %v", err)
	}
}
