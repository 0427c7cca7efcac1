// Package callrelay holds the domain of callrelay: a masked number's routing, calls, their legs
// and timeline, and the one error type every layer returns. Storage and transport live in other
// packages and depend on this one, never the other way round.
package callrelay

import (
	"errors"
	"fmt"
)

// Error codes, mapped to HTTP statuses in one place (internal/server).
const (
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"
	EUNAUTHORIZED = "unauthorized"
	EUPSTREAM     = "upstream"
	EINTERNAL     = "internal"
	EGONE         = "gone"        // deleted on purpose: a voicemail's expired audio
	EUNAVAILABLE  = "unavailable" // a part callrelay needs is down for now (the recording store)
)

// Error is an error a caller can act on: a code, a message meant for people and, for invalid
// input, the field at fault.
type Error struct {
	Code    string
	Message string
	Field   string

	// Set for EUPSTREAM: what Twilio answered (zero when Twilio could not be reached).
	TwilioCode    int
	TwilioMessage string
	TwilioStatus  int // HTTP status

}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("callrelay error: code=%s field=%s message=%s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("callrelay error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalidf returns an EINVALID *Error naming the field at fault.
func Invalidf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err's *Error, EINTERNAL for any other non-nil error.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of err's *Error; other errors are internal and their text
// is not shown to clients.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
