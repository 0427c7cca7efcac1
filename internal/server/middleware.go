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
	"github.com/callrelay/callrelay/internal/twiml"
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
// logger carrying it, then logs the request and records its metrics once it is done, timed on
// now.
func withRequest(base *slog.Logger, m *metrics, now func() time.Time) func(http.Handler) http.Handler {
	base = slog.New(boundedHandler{base.Handler()})
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := now()
			id := r.Header.Get("X-Request-Id")
			if !saneID(id) {
				id = newID()
			}
			w.Header().Set("X-Request-Id", id)
			l := base.With(slog.String("request_id", id))
			r = r.WithContext(context.WithValue(r.Context(), loggerKey, l))
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				// recoverPanics answers every panic but http.ErrAbortHandler, which a handler
				// raises to cut a response mid-stream: log and count that one too, then let
				// net/http close the connection.
				v := recover()
				route := routeOf(r)
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				elapsed := now().Sub(start)
				m.observe(route, r.Method, status, elapsed)
				attrs := []any{slog.String("method", r.Method), slog.String("route", route),
					slog.Int("status", status), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000)}
				if sid := r.PostForm.Get("CallSid"); sid != "" {
					attrs = append(attrs, slog.String("call_sid", sid))
				}
				if v != nil {
					l.Warn("request aborted", append(attrs, slog.Bool("aborted", true))...)
					panic(v)
				}
				l.Info("request", attrs...)
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// routeOf is the route pattern r matched ("unmatched" if none): a label with as many values
// as there are routes, where the path the client wrote has as many as it likes.
func routeOf(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	return "unmatched"
}

// Log bounds: the client writes most of what a request logs (method, parameters, SIDs), and
// a line must not grow with what it sends. A stack trace is ours and worth keeping whole.
const (
	maxLogString = 512
	maxLogStack  = 16 << 10
)

// boundedHandler clips every string a log record carries, keys and values, to maxLogString
// bytes (a "stack" to maxLogStack).
type boundedHandler struct{ slog.Handler }

func (h boundedHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, clip(rec.Message, maxLogString), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(boundAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h boundedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	bounded := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		bounded[i] = boundAttr(a)
	}
	return boundedHandler{h.Handler.WithAttrs(bounded)}
}

func (h boundedHandler) WithGroup(name string) slog.Handler {
	return boundedHandler{h.Handler.WithGroup(clip(name, maxLogString))}
}

func boundAttr(a slog.Attr) slog.Attr {
	limit := maxLogString
	if a.Key == "stack" {
		limit = maxLogStack
	}
	a.Key = clip(a.Key, maxLogString)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(clip(v.String(), limit))
	case slog.KindAny:
		// A panic's value or an error: whatever it holds, logged as bounded text.
		a.Value = slog.StringValue(clip(fmt.Sprint(v.Any()), limit))
	case slog.KindGroup:
		group := v.Group()
		bounded := make([]slog.Attr, len(group))
		for i, g := range group {
			bounded[i] = boundAttr(g)
		}
		a.Value = slog.GroupValue(bounded...)
	default:
		a.Value = v
	}
	return a
}

// clip cuts s to at most limit bytes, on a rune boundary, saying how long it was.
func clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
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
				m.signatureFailures.WithLabelValues(routeOf(r)).Inc()
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
			if name, ok := formSIDs(form, r.URL.Query()); !ok {
				// Twilio's SIDs always have their shape: this form was not written by Twilio,
				// though its signature may check (see callrelay.WebhookSIDs).
				logger(r.Context()).Warn("webhook refused: malformed SID", slog.String("path", r.URL.Path),
					slog.String("parameter", name))
				http.Error(w, name+" is not a Twilio SID", http.StatusBadRequest)
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

// formSIDs reports whether every SID a webhook may carry, in its form or in the query
// callrelay wrote into its URL, has the shape of a Twilio SID; if not, it returns the first
// offending parameter's name. An empty or absent one is left to the handler.
func formSIDs(form, query url.Values) (string, bool) {
	for _, p := range callrelay.WebhookSIDs {
		for _, v := range form[p.Param] {
			if v != "" && !callrelay.ValidSID(p.Prefix, v) {
				return p.Param, false
			}
		}
	}
	for _, v := range query[twiml.QueryCall] {
		if v != "" && !callrelay.ValidSID("CA", v) {
			return twiml.QueryCall, false
		}
	}
	return "", true
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
