package callrelay_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

func TestError_Error(t *testing.T) {
	tests := []struct {
		err  *callrelay.Error
		want string
	}{
		{callrelay.Invalidf("targets[1].uri", "uri must start with %s.", "sip:"),
			"callrelay error: code=invalid field=targets[1].uri message=uri must start with sip:."},
		{callrelay.Errorf(callrelay.ENOTFOUND, "Number %s not found.", "+15550001111"),
			"callrelay error: code=not_found message=Number +15550001111 not found."},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error(): got %q, want %q", got, tt.want)
		}
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"invalid", callrelay.Invalidf("mode", "bad"), callrelay.EINVALID},
		{"conflict", callrelay.Errorf(callrelay.ECONFLICT, "busy"), callrelay.ECONFLICT},
		{"wrapped", fmt.Errorf("put: %w", callrelay.Errorf(callrelay.ENOTFOUND, "gone")), callrelay.ENOTFOUND},
		{"other error", errors.New("boom"), callrelay.EINTERNAL},
	}
	for _, tt := range tests {
		if got := callrelay.ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%s): got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"invalid", callrelay.Invalidf("mode", "mode must be %q.", "direct"), `mode must be "direct".`},
		{"wrapped", fmt.Errorf("put: %w", callrelay.Errorf(callrelay.ENOTFOUND, "gone")), "gone"},
		{"other error hidden", errors.New("pq: password authentication failed"), "Internal error."},
	}
	for _, tt := range tests {
		if got := callrelay.ErrorMessage(tt.err); got != tt.want {
			t.Errorf("ErrorMessage(%s): got %q, want %q", tt.name, got, tt.want)
		}
	}
}
