package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestBoundedHandler: every string of a record, at any depth, is clipped on a rune boundary
// and says how long it was; a stack keeps more; numbers are untouched.
func TestBoundedHandler(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(boundedHandler{slog.NewJSONHandler(&buf, nil)}).With(slog.String("with", strings.Repeat("w", 5000)))
	long := strings.Repeat("é", 3000) // 6000 bytes, two per rune: a cut may fall mid-rune
	l.Info(long, slog.String("s", long), slog.Group("g", slog.String("inner", long)), slog.Int("n", 7),
		slog.Any("err", errors.New(long)), slog.String("stack", strings.Repeat("s", 20000)),
		slog.String(long, "key"))

	line := buf.String()
	if !utf8.ValidString(line) {
		t.Fatalf("log line is not UTF-8: a cut fell inside a rune")
	}
	if len(line) > 4*(maxLogString+40)+maxLogStack+3*(2*maxLogString+40)+200 {
		t.Errorf("log line of %d bytes: not clipped", len(line))
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{rec["msg"], rec["s"], rec["g"].(map[string]any)["inner"], rec["err"], rec["with"]} {
		s := v.(string)
		if len(s) > maxLogString+40 || !strings.HasSuffix(s, "bytes)") {
			t.Errorf("value of %d bytes, want at most %d and the length it had: %.60s…", len(s), maxLogString, s)
		}
	}
	if s := rec["stack"].(string); len(s) < maxLogStack || len(s) > maxLogStack+40 {
		t.Errorf("stack of %d bytes, want %d and the note", len(s), maxLogStack)
	}
	if rec["n"] != float64(7) {
		t.Errorf("n = %v, want 7", rec["n"])
	}
	if short := clip("abc", 3); short != "abc" {
		t.Errorf("clip of a short string = %q, want it whole", short)
	}
}
