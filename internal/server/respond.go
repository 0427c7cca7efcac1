package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// statusOf maps an error code to its HTTP status: the only place that does. A code it does
// not know is an internal error (500), never a WriteHeader(0), which panics.
func statusOf(code string) int {
	switch code {
	case callrelay.EINVALID:
		return http.StatusBadRequest
	case callrelay.ENOTFOUND:
		return http.StatusNotFound
	case callrelay.ECONFLICT:
		return http.StatusConflict
	case callrelay.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case callrelay.EUPSTREAM:
		return http.StatusBadGateway
	case callrelay.EGONE:
		return http.StatusGone
	case callrelay.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code          string `json:"code"`
	Message       string `json:"message"`
	Field         string `json:"field,omitempty"`
	TwilioCode    int    `json:"twilio_code,omitempty"`
	TwilioMessage string `json:"twilio_message,omitempty"`
}

// writeError answers an ops API request with docs/design.md's JSON error. Internal errors are logged
// with their detail and shown to the client without it.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := callrelay.ErrorCode(err)
	body := errorJSON{Code: code, Message: callrelay.ErrorMessage(err)}
	var e *callrelay.Error
	if errors.As(err, &e) {
		body.Field, body.TwilioCode, body.TwilioMessage = e.Field, e.TwilioCode, e.TwilioMessage
	}
	if code == callrelay.EINTERNAL {
		logger(r.Context()).Error("internal error", slog.String("error", err.Error()))
	}
	writeErrorStatus(w, statusOf(code), body)
}

func writeErrorStatus(w http.ResponseWriter, status int, body errorJSON) {
	writeJSON(w, status, errorBody{Error: body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

// writeTwiML answers a Twilio webhook. It is always 200 with a document: an error answer would
// leave a live caller in silence.
func writeTwiML(w http.ResponseWriter, doc []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

// readBody reads an ops API request's (size-limited) body; failing, a 400 saying why.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, callrelay.Invalidf("", "Body is larger than %d bytes.", tooLarge.Limit)
		}
		return nil, callrelay.Invalidf("", "Cannot read body: %v.", err)
	}
	return body, nil
}
