package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
