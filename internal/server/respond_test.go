package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// TestWriteError: each code answers its status; a code statusOf does not know (an error made
// with a typo, a code added without its status) is a 500 with the JSON error, not a panic
// from WriteHeader(0).
func TestWriteError(t *testing.T) {
	for code, want := range map[string]int{
		callrelay.EINVALID: 400, callrelay.ENOTFOUND: 404, callrelay.ECONFLICT: 409, callrelay.EUNAUTHORIZED: 401,
		callrelay.EUPSTREAM: 502, callrelay.EINTERNAL: 500, callrelay.EGONE: 410, callrelay.EUNAVAILABLE: 503,
		"no-such-code": 500,
	} {
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodGet, "/api/calls", nil), callrelay.Errorf(code, "boom"))
		if rec.Code != want {
			t.Errorf("%s: status %d, want %d", code, rec.Code, want)
		}
		var body errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code == "" {
			t.Errorf("%s: body %q (%v), want the JSON error", code, rec.Body, err)
		}
	}
}
