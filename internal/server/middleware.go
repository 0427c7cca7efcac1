package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/twiml"
)

// Body limits. Twilio's webhook forms are a few KiB; SIP headers can add some.
const (
	maxWebhookBody = 64 << 10
	maxAPIBody     = 256 << 10
)

type ctxKey int

const loggerKey ctxKey = iota

// logger returns the request's logger (with its request ID).
func logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// withRequest gives each request an ID (X-Request-Id if the client sent a sane one) and a
// logger carrying it, then logs the request and records its metrics once it is done.
func withRequest(base *slog.Logger, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get("X-Request-Id")
			if !saneID(id) {
				id = newID()
			}
			w.Header().Set("X-Request-Id", id)
			l := base.With(slog.String("request_id", id))
			r = r.WithContext(context.WithValue(r.Context(), loggerKey, l))
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)

			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			m.observe(route, r.Method, status, elapsed)
			attrs := []any{slog.String("method", r.Method), slog.String("route", route),
				slog.Int("status", status), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000)}
			if sid := r.PostForm.Get("CallSid"); sid != "" {
				attrs = append(attrs, slog.String("call_sid", sid))
			}
			l.Info("request", attrs...)
		})
	}
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanics turns a panic into an answer the client can use: for Twilio an apology in
// TwiML (never a 500 to a live caller), for others a JSON internal error.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			logger(r.Context()).Error("panic", slog.Any("panic", v), slog.String("call_sid", r.PostForm.Get("CallSid")),
				slog.String("stack", string(debug.Stack())))
			if strings.HasPrefix(r.URL.Path, "/twilio/") {
				writeTwiML(w, twiml.Apology("", ""))
				return
			}
			writeError(w, r, fmt.Errorf("panic: %v", v))
		}()
		next.ServeHTTP(w, r)
	})
}

// webhookTimeout bounds the work behind one webhook; Twilio itself waits 15 s at most.
const webhookTimeout = 10 * time.Second

// detach keeps a webhook's work going when Twilio drops the connection: the call exists
// whether or not Twilio waits for our answer, and a half-recorded call is worse than a late
// one. The work stays bounded by webhookTimeout.
func detach(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), webhookTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// twilioSignature admits only requests signed by Twilio: it reads the (size-limited) body
// once, checks X-Twilio-Signature against the public URL, and hands the parsed form on in
// r.PostForm. A forged or unsigned request gets 403 and reaches no handler.
func twilioSignature(v *signature.Validator, skip bool, m *metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
					return
				}
				http.Error(w, "cannot read request body", http.StatusBadRequest)
				return
			}
			var form url.Values
			if skip {
				if form, err = url.ParseQuery(string(body)); err != nil {
					http.Error(w, "malformed form body", http.StatusBadRequest)
					return
				}
			} else if form, err = v.Verify(r, body); err != nil {
				// A label must be UTF-8 (the client wrote this path), or the counter panics.
				m.signatureFailures.WithLabelValues(strings.ToValidUTF8(r.URL.Path, "\uFFFD")).Inc()
				logger(r.Context()).Warn("webhook refused: bad signature", slog.String("path", r.URL.Path),
					slog.String("reason", err.Error()))
				http.Error(w, "invalid X-Twilio-Signature", http.StatusForbidden)
				return
			}
			if name, ok := formText(form); !ok {
				// Twilio sends UTF-8; PostgreSQL stores neither invalid UTF-8 nor NUL, and a
				// store error here would pass for the database being down.
				logger(r.Context()).Warn("webhook refused: parameter is not UTF-8 text", slog.String("path", r.URL.Path),
					slog.String("parameter", strconv.QuoteToASCII(name)))
				http.Error(w, "form parameters must be valid UTF-8, without NUL", http.StatusBadRequest)
				return
			}
			if form == nil {
				form = url.Values{} // a JSON body: no parameters, and none to parse later
			}
			// r.Form is left to ParseForm, which builds it from this and the query if asked.
			r.PostForm = form
			next.ServeHTTP(w, r)
		})
	}
}

// urlText reports whether u's decoded path and query are valid UTF-8 without NUL.
func urlText(u *url.URL) bool {
	if !isText(u.Path) {
		return false
	}
	_, ok := formText(u.Query())
	return ok
}

// isText reports whether s can be stored as PostgreSQL text: valid UTF-8 without NUL.
func isText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// formText reports whether every name and value of form is valid UTF-8 without NUL; if not,
// it returns the first offending parameter's name.
func formText(form url.Values) (string, bool) {
	for name, vals := range form {
		if !isText(name) {
			return name, false
		}
		for _, v := range vals {
			if !isText(v) {
				return name, false
			}
		}
	}
	return "", true
}

// opsAuth admits requests bearing the ops token. With no token configured the API is closed
// (503), never open. Tokens are compared by their hashes in constant time, so neither their
// content nor their length leaks through timing.
func opsAuth(token string) func(http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if token == "" {
				writeErrorStatus(w, http.StatusServiceUnavailable, errorJSON{Code: callrelay.EUNAUTHORIZED,
					Message: "The ops API is disabled: set CALLRELAY_OPS_TOKEN."})
				return
			}
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="callrelay"`)
				writeError(w, r, callrelay.Errorf(callrelay.EUNAUTHORIZED, "A valid bearer token is required."))
				return
			}
			if !urlText(r.URL) {
				// Such an ID or filter matches nothing, and would reach PostgreSQL as an error.
				writeError(w, r, callrelay.Invalidf("", "The URL's path and query must be valid UTF-8, without NUL."))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
			next.ServeHTTP(w, r)
		})
	}
}

// formInt reads an optional integer form value; absent or malformed gives nil.
func formInt(v string) *int {
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	return &n
}
