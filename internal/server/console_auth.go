package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// The console's login: the ops token, once, for a session cookie. Sessions live in PostgreSQL
// (console_sessions), so every replica knows them and logout ends them everywhere.

const (
	sessionCookie   = "callrelay_console"
	loginCSRFCookie = "callrelay_login"
	inboxCSRFCookie = "callrelay_inbox"
	// SessionTTL is how long a console session lasts after login.
	SessionTTL = 12 * time.Hour
	// maxFormBody bounds a console form (the routing form is the largest).
	maxFormBody = maxAPIBody
)

// consoleCSP: scripts and styles from this origin only (no inline script or style), media
// from this origin (the voicemail player), no framing, forms only to this origin.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// consoleHeaders sets the security headers of every console and inbox response.
func consoleHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// The inbox's URLs carry the owner's token: never sent on to another site.
		h.Set("Referrer-Policy", "no-referrer")
		if !strings.HasPrefix(r.URL.Path, "/console/static/") {
			h.Set("Cache-Control", "no-store")
		}
		if !urlText(r.URL) {
			// As the ops API (opsAuth): such an ID or filter matches nothing, and would reach
			// PostgreSQL as an error (a 500).
			http.Error(w, "The URL's path and query must be valid UTF-8, without NUL.", http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type sessionKey struct{}

// consoleSession is the logged-in session of a request.
type consoleSession struct {
	idHash []byte
	csrf   string
	expiry time.Time
}

func sessionOf(ctx context.Context) *consoleSession {
	s, _ := ctx.Value(sessionKey{}).(*consoleSession)
	return s
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// requireSession lets a request through with its session, or: a page goes to the login, a
// form or the stream answers 401.
func (c *console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie)
		var s *postgres.Session
		if err == nil && ck.Value != "" && len(ck.Value) < 100 {
			s, err = c.db.GetSession(r.Context(), hashToken(ck.Value))
		}
		if err != nil || s == nil {
			if callrelay.ErrorCode(err) == callrelay.EINTERNAL && err != http.ErrNoCookie {
				writeError(w, r, err)
				return
			}
			if r.Method == http.MethodGet && r.URL.Path != "/console/events" && !strings.HasSuffix(r.URL.Path, "/audio") {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
			c.tmpl.render(w, r, http.StatusUnauthorized, "error", consolePage{Title: "Not logged in",
				Data: "Your session has ended. Log in again."})
			return
		}
		ctx := context.WithValue(r.Context(), sessionKey{}, &consoleSession{idHash: hashToken(ck.Value), csrf: s.CSRF, expiry: s.ExpiresAt})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// sameOrigin refuses a state-changing request another site's page sent: a browser says so in
// Sec-Fetch-Site, and in Origin. The CSRF token is checked besides.
func (c *console) sameOrigin(r *http.Request) bool {
	// Sec-Fetch-Site is set by the browser, never by a page: when present it decides. (Origin
	// is "null" on these forms' posts: the pages' Referrer-Policy is no-referrer.)
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser's cross-site form (those send one): the CSRF token decides
	}
	u, err := url.Parse(origin)
	if err != nil || origin == "null" {
		return false
	}
	return u.Host == r.Host || (c.publicURL != nil && u.Scheme == c.publicURL.Scheme && u.Host == c.publicURL.Host)
}

// checkForm reads a POSTed form (bounded) and checks its origin and its CSRF token against
// want. It answers the refusal itself and returns false.
func (c *console) checkForm(w http.ResponseWriter, r *http.Request, want string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		c.tmpl.render(w, r, http.StatusBadRequest, "error", consolePage{Title: "Bad request", Data: "The form could not be read."})
		return false
	}
	got := r.PostForm.Get("csrf")
	if !c.sameOrigin(r) || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		logger(r.Context()).Warn("console: form refused", slog.Bool("same_origin", c.sameOrigin(r)), slog.Bool("token_expected", want != ""),
			slog.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")), slog.String("origin", r.Header.Get("Origin")))
		c.tmpl.render(w, r, http.StatusForbidden, "error", consolePage{Title: "Form refused",
			Data: "This form was not sent from this page (its security token is missing or stale). Reload the page and try again."})
		return false
	}
	return true
}

// cookie is a cookie of the console's: HttpOnly, SameSite=Strict, Secure when callrelay's
// public URL is https.
func (c *console) cookie(name, value, path string, maxAge time.Duration) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode}
	if maxAge > 0 {
		ck.MaxAge = int(maxAge / time.Second)
		ck.Expires = c.now().Add(maxAge)
	} else if maxAge < 0 {
		ck.MaxAge = -1
	}
	return ck
}

func (c *console) handleLoginPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.loginPage(w, r, http.StatusOK, "")
	})
}

// loginPage shows the form with a fresh login CSRF token (double-submitted: cookie and form).
func (c *console) loginPage(w http.ResponseWriter, r *http.Request, status int, tokenErr string) {
	token := randomToken()
	http.SetCookie(w, c.cookie(loginCSRFCookie, token, "/console/login", 30*time.Minute))
	p := consolePage{Title: "Log in", CSRF: token, Data: fmt.Sprintf("%d hours", int(SessionTTL.Hours())), FieldErrors: map[string]string{}}
	if tokenErr != "" {
		p.FieldErrors["token"] = tokenErr
	}
	c.tmpl.render(w, r, status, "login", p)
}

func (c *console) handleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var want string
		if ck, err := r.Cookie(loginCSRFCookie); err == nil {
			want = ck.Value
		}
		if !c.checkForm(w, r, want) {
			return
		}
		if c.opsToken == "" {
			c.loginPage(w, r, http.StatusServiceUnavailable, "No ops token is configured (CALLRELAY_OPS_TOKEN): the console is closed.")
			return
		}
		got := r.PostForm.Get("token")
		if subtle.ConstantTimeCompare(hashToken(got), hashToken(c.opsToken)) != 1 {
			c.loginPage(w, r, http.StatusUnauthorized, "This is not the ops token.")
			return
		}
		id := randomToken()
		expires := c.now().Add(SessionTTL)
		if err := c.db.CreateSession(r.Context(), hashToken(id), randomToken(), expires); err != nil {
			writeError(w, r, err)
			return
		}
		http.SetCookie(w, c.cookie(loginCSRFCookie, "", "/console/login", -1))
		http.SetCookie(w, c.cookie(sessionCookie, id, "/console", SessionTTL))
		http.Redirect(w, r, "/console", http.StatusSeeOther)
	})
}

func (c *console) handleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sessionOf(r.Context())
		if !c.checkForm(w, r, s.csrf) {
			return
		}
		if err := c.db.DeleteSession(r.Context(), s.idHash); err != nil {
			writeError(w, r, err)
			return
		}
		http.SetCookie(w, c.cookie(sessionCookie, "", "/console", -1))
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
	})
}
