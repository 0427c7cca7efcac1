package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

const (
	// DefaultSMTPPort is used for smtp:// URLs without a port: the message
	// submission port (RFC 6409), where STARTTLS and AUTH are offered; port
	// 25 is for relaying between MTAs and usually refuses or filters clients.
	DefaultSMTPPort = 587
	// DefaultSMTPSPort is used for smtps:// URLs without a port (RFC 8314).
	DefaultSMTPSPort = 465
	// DefaultTimeout bounds one send when NewSMTP is given no timeout.
	DefaultTimeout = 30 * time.Second
)

// SMTP sends each message over a new SMTP connection. It holds no connection
// between sends, so a failed send leaves nothing broken behind; it is safe
// for concurrent use.
//
// smtp:// uses STARTTLS whenever the server offers it and stays in plain
// text otherwise (opportunistic); a server that offers STARTTLS but fails
// the TLS handshake (e.g. a certificate that does not verify) fails the send
// rather than falling back to plain text. smtps:// is TLS from the first byte.
// With a user in the URL the client authenticates, with PLAIN or else LOGIN
// (else SCRAM/CRAM-MD5 when that is all the server offers); the password is
// never sent over an unencrypted connection to a host other than localhost
// (go-mail's rule, the same as net/smtp's): such a send fails.
type SMTP struct {
	host        string // for TLS verification and the AUTH host check
	port        int
	addr        string // host:port
	implicitTLS bool
	user, pass  string
	hasUser     bool
	timeout     time.Duration
	tlsConfig   *tls.Config
	redacted    string
}

// NewSMTP parses an smtp:// or smtps:// URL:
//
//	smtp://[user[:password]@]host[:port]   STARTTLS when offered, port 587 by default
//	smtps://[user[:password]@]host[:port]  implicit TLS, port 465 by default
//
// user and password are percent-decoded. timeout bounds every whole send
// (connect, TLS, AUTH, transfer); zero or negative means DefaultTimeout.
// Errors never contain the URL's password.
func NewSMTP(smtpURL string, timeout time.Duration) (*SMTP, error) {
	u, err := url.Parse(strings.TrimSpace(smtpURL))
	if err != nil {
		// url's errors quote the raw URL, and some quote a piece of it
		// (an "invalid port" can be the password when '@' is missing):
		// none of it is repeated here.
		return nil, errors.New("mail: SMTP URL is malformed (not shown: it may contain a password); expected smtp://user:pass@host:port or smtps://…")
	}
	s := &SMTP{timeout: timeout}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	switch u.Scheme {
	case "smtp":
		s.port = DefaultSMTPPort
	case "smtps":
		s.port = DefaultSMTPSPort
		s.implicitTLS = true
	default:
		return nil, fmt.Errorf("mail: SMTP URL scheme must be smtp or smtps, not %q", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, errors.New("mail: SMTP URL must be of the form smtp://host:port (did you forget the //?)")
	}
	s.host = u.Hostname()
	if s.host == "" {
		return nil, errors.New("mail: SMTP URL has no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, errors.New("mail: SMTP URL port must be 1..65535")
		}
		s.port = n
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("mail: SMTP URL must have no path, query or fragment")
	}
	if u.User != nil && u.User.Username() != "" {
		s.hasUser = true
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	s.addr = net.JoinHostPort(s.host, strconv.Itoa(s.port))
	s.tlsConfig = &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
	s.redacted = u.Scheme + "://" + s.addr
	if s.hasUser {
		s.redacted = u.Scheme + "://" + url.User(s.user).String() + ":xxxxx@" + s.addr
	}
	return s, nil
}

// String is the URL with the password masked, for logs.
func (s *SMTP) String() string { return s.redacted }

// Send delivers m over a new connection. It returns when the server has
// accepted the message (250 after DATA), or with an error once ctx is done or
// the timeout has run out, whichever comes first. [IsPermanent] tells a
// refusal (5xx) from a failure worth retrying.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg, data, err := render(m)
	if err != nil {
		return err
	}
	from, err := msg.GetSender(false)
	if err != nil {
		return invalid("From: %v", err)
	}
	rcpts, err := msg.GetRecipients()
	if err != nil {
		return invalid("To: %v", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: smtp %s: %w", s.addr, err)
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	// Every connection opened for this send is closed when the send ends,
	// and at once when ctx is done: that unblocks any read or write
	// in progress. (go-mail leaves the connection open when a command
	// after the greeting fails during its dial.)
	var conns connSet
	defer conns.closeAll()
	stop := context.AfterFunc(ctx, conns.closeAll)
	defer stop()

	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tlsConfig.Clone()),
		gomail.WithDialContextFunc(s.dialer(&conns, deadline)),
	}
	if s.implicitTLS {
		// The dialer hands go-mail a *tls.Conn already; no STARTTLS on top.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.hasUser {
		opts = append(opts,
			gomail.WithUsername(s.user), gomail.WithPassword(s.pass),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
	}
	client, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("mail: smtp %s: %w", s.addr, err)
	}

	c, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return s.fail(ctx, "connect", err)
	}
	quit := true
	defer func() {
		if quit {
			_ = c.Quit() // polite, best effort; the deferred close follows
		}
	}()
	if err := c.Mail(from); err != nil {
		return s.fail(ctx, "MAIL FROM", err)
	}
	for _, rcpt := range rcpts {
		if err := c.Rcpt(rcpt); err != nil {
			return s.fail(ctx, "RCPT TO "+rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return s.fail(ctx, "DATA", err)
	}
	if _, err := w.Write(data); err != nil {
		return s.fail(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return s.fail(ctx, "DATA", err)
	}
	// The server has taken the message: a failing QUIT does not undo that,
	// and reporting it would make the caller send the message twice.
	quit = false
	_ = c.Quit()
	return nil
}

// fail wraps err from the given stage; when the send ran out of time or ctx
// was cancelled the error says so (and wraps ctx's error).
func (s *SMTP) fail(ctx context.Context, stage string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("mail: smtp %s: %s: %w (%v)", s.addr, stage, ctxErr, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("mail: smtp %s: %s: no answer within %s: %w (%v)", s.addr, stage, s.timeout, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("mail: smtp %s: %s: %w", s.addr, stage, err)
}

// dialer connects to the server (ignoring go-mail's "host:port", which does
// not bracket IPv6 literals), registers the connection for closing and caps
// every deadline go-mail sets at the end of the whole send.
func (s *SMTP) dialer(conns *connSet, deadline time.Time) gomail.DialContextFunc {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return nil, err
		}
		if !conns.add(raw) {
			if err := context.Cause(ctx); err != nil {
				return nil, err
			}
			return nil, net.ErrClosed
		}
		conn := &cappedConn{Conn: raw, limit: deadline}
		if err := conn.SetDeadline(deadline); err != nil {
			return nil, err
		}
		if !s.implicitTLS {
			return conn, nil
		}
		// go-mail's smtp client sees a *tls.Conn and so knows the
		// connection is encrypted (PLAIN/LOGIN are allowed on it).
		tc := tls.Client(conn, s.tlsConfig.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		return tc, nil
	}
}

// cappedConn never lets a deadline go past limit (go-mail sets "now +
// timeout" after connecting; the cap makes the timeout bound the whole send).
type cappedConn struct {
	net.Conn
	limit time.Time
}

func (c *cappedConn) cap(t time.Time) time.Time {
	if t.IsZero() || t.After(c.limit) {
		return c.limit
	}
	return t
}

func (c *cappedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.cap(t)) }
func (c *cappedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.cap(t)) }
func (c *cappedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.cap(t)) }

// connSet closes the connections of one send, once.
type connSet struct {
	mu     sync.Mutex
	closed bool
	conns  []net.Conn
}

// add registers c; when the set is already closed it closes c and reports false.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	s.conns = append(s.conns, c)
	return true
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}

// ReplyCode returns the SMTP reply code carried by err (e.g. 550, 451), or 0
// when err is not an SMTP reply (connection refused, timeout, TLS…).
func ReplyCode(err error) int {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode()
	}
	return 0
}

// IsPermanent reports whether retrying the same send cannot help: the server
// answered with a 5xx reply (unknown recipient, message refused,
// authentication failed…), or the Message itself is invalid
// ([ErrInvalidMessage]). Connection errors, timeouts, cancellations and 4xx
// replies are not permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrInvalidMessage) {
		return true
	}
	code := ReplyCode(err)
	return code >= 500 && code <= 599
}
