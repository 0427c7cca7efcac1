package mail_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail"
)

// received is one message as the test server saw it.
type received struct {
	From       string
	Rcpts      []string
	Data       []byte
	User, Pass string
	TLS        bool
}

// backend is a go-smtp Backend recording what it receives; its error fields
// make it refuse at the given stage.
type backend struct {
	mu       sync.Mutex
	msgs     []received
	auths    []string // "user\x00pass" of every AUTH attempt
	rcptErr  error
	dataErr  error
	wantUser string // when set, AUTH must present wantUser/wantPass
	wantPass string
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, conn: c}, nil
}

func (b *backend) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

func (b *backend) authAttempts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.auths...)
}

type session struct {
	b          *backend
	conn       *smtp.Conn
	cur        received
	user, pass string
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		s.b.mu.Lock()
		s.b.auths = append(s.b.auths, username+"\x00"+password)
		want := s.b.wantUser != "" && (username != s.b.wantUser || password != s.b.wantPass)
		s.b.mu.Unlock()
		if want {
			return smtp.ErrAuthFailed
		}
		s.user, s.pass = username, password
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.cur = received{From: from}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.b.mu.Lock()
	err := s.b.rcptErr
	s.b.mu.Unlock()
	if err != nil {
		return err
	}
	s.cur.Rcpts = append(s.cur.Rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.dataErr != nil {
		return s.b.dataErr
	}
	s.cur.Data = data
	s.cur.User, s.cur.Pass = s.user, s.pass
	_, s.cur.TLS = s.conn.TLSConnectionState()
	s.b.msgs = append(s.b.msgs, s.cur)
	return nil
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

// serve runs a go-smtp server for be on l until the test ends.
func serve(t *testing.T, be *backend, l net.Listener, tlsConfig *tls.Config) {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLSConfig = tlsConfig
	// AUTH without TLS for the plain-text tests; with a TLS config the
	// server offers AUTH only after STARTTLS.
	srv.AllowInsecureAuth = tlsConfig == nil
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// startServer listens on a free loopback port and serves be on it.
func startServer(t *testing.T, be *backend) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, be, l, nil)
	return l.Addr().String()
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "callrelay test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

var testZone = time.FixedZone("EST", -5*3600)

// testDate is every test message's Date: one instant for the whole run, so that two messages
// built apart compare equal.
var testDate = clocktest.Start().In(testZone)

// voicemail is the message the tests send: non-ASCII subject and text, HTML,
// an MP3 attachment holding every byte value, an extra header.
func voicemail() (mail.Message, []byte) {
	audio := make([]byte, 10_000)
	for i := range audio {
		audio[i] = byte(i * 7)
	}
	return mail.Message{
		From:      "Callrelay <callrelay@localhost>",
		To:        "dana@example.com",
		Subject:   "Voicemail from +1 555 987 0000 — Grüße, 2 min",
		Text:      "Hello Dana,\nyou have a voicemail from +1 555 987 0000.\nTranscript: „Grüße aus Köln“ = 100% sure.\n.\nThat line above is a lone dot.",
		HTML:      "<p>Hello Dana,</p><p>Transcript: <em>„Grüße aus Köln“</em></p>",
		Date:      testDate,
		MessageID: "<voicemail-42@callrelay>",
		Headers:   map[string]string{"X-Callrelay-Voicemail": "42"},
		Attachments: []mail.Attachment{
			{Filename: "voicemail-42.mp3", ContentType: "audio/mpeg", Data: audio},
		},
	}, audio
}

func readPart(t *testing.T, p *multipart.Part) string {
	t.Helper()
	b, err := io.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// checkVoicemail parses raw as the voicemail() message and checks every part.
func checkVoicemail(t *testing.T, raw []byte) {
	t.Helper()
	m, audio := voicemail()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	h := msg.Header
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "callrelay@localhost" || from[0].Name != "Callrelay" {
		t.Errorf("From = %v, %v", from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "dana@example.com" {
		t.Errorf("To = %v, %v", to, err)
	}
	if s := h.Get("Subject"); !strings.HasPrefix(s, "=?UTF-8?") {
		t.Errorf("Subject %q is not an encoded-word", s)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subject != m.Subject {
		t.Errorf("Subject = %q, %v; want %q", subject, err, m.Subject)
	}
	// RFC 5322's date-time with a numeric zone, e.g. "Sat, 09 Mar 2024 14:05:06 -0500".
	if got, want := h.Get("Date"), m.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"); got != want || !strings.HasSuffix(got, " -0500") {
		t.Errorf("Date header = %q, want %q", got, want)
	}
	date, err := h.Date()
	if err != nil || !date.Equal(m.Date) {
		t.Errorf("Date = %v, %v", date, err)
	}
	if _, off := date.Zone(); off != -5*3600 {
		t.Errorf("Date zone offset = %d", off)
	}
	if got := h.Get("Message-Id"); got != "<voicemail-42@callrelay>" {
		t.Errorf("Message-ID = %q", got)
	}
	if got := h.Get("Mime-Version"); got != "1.0" {
		t.Errorf("MIME-Version = %q", got)
	}
	if got := h.Get("X-Callrelay-Voicemail"); got != "42" {
		t.Errorf("X-Callrelay-Voicemail = %q", got)
	}

	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type = %q, %v", h.Get("Content-Type"), err)
	}
	mixed := multipart.NewReader(msg.Body, params["boundary"])

	alt, err := mixed.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	mt, altParams, err := mime.ParseMediaType(alt.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("first part Content-Type = %q, %v", alt.Header.Get("Content-Type"), err)
	}
	alternative := multipart.NewReader(alt, altParams["boundary"])
	for _, want := range []struct{ ct, body string }{
		{"text/plain", m.Text},
		{"text/html", m.HTML},
	} {
		p, err := alternative.NextPart() // decodes quoted-printable
		if err != nil {
			t.Fatalf("alternative %s: %v", want.ct, err)
		}
		mt, ps, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil || mt != want.ct || !strings.EqualFold(ps["charset"], "UTF-8") {
			t.Errorf("alternative Content-Type = %q, %v; want %s; charset=UTF-8", p.Header.Get("Content-Type"), err, want.ct)
		}
		if got := readPart(t, p); got != want.body {
			t.Errorf("%s body = %q, want %q", want.ct, got, want.body)
		}
	}
	if _, err := alternative.NextPart(); err != io.EOF {
		t.Errorf("alternative has more than two parts: %v", err)
	}

	att, err := mixed.NextRawPart()
	if err != nil {
		t.Fatal(err)
	}
	if got := att.FileName(); got != "voicemail-42.mp3" {
		t.Errorf("attachment filename = %q", got)
	}
	disp, _, err := mime.ParseMediaType(att.Header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" {
		t.Errorf("Content-Disposition = %q, %v", att.Header.Get("Content-Disposition"), err)
	}
	if mt, _, err := mime.ParseMediaType(att.Header.Get("Content-Type")); err != nil || mt != "audio/mpeg" {
		t.Errorf("attachment Content-Type = %q, %v", att.Header.Get("Content-Type"), err)
	}
	if got := att.Header.Get("Content-Transfer-Encoding"); got != "base64" {
		t.Errorf("attachment Content-Transfer-Encoding = %q", got)
	}
	decoded, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, att))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(decoded, audio) {
		t.Errorf("attachment bytes differ: got %d bytes, want %d", len(decoded), len(audio))
	}
	if _, err := mixed.NextPart(); err != io.EOF {
		t.Errorf("mixed has more than two parts: %v", err)
	}
}

func newSMTP(t *testing.T, url string, timeout time.Duration) *mail.SMTP {
	t.Helper()
	s, err := mail.NewSMTP(url, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSMTP_OK(t *testing.T) {
	be := &backend{wantUser: "dana@example.com", wantPass: "p@ss:wörd"}
	addr := startServer(t, be)
	s := newSMTP(t, "smtp://dana%40example.com:p%40ss%3Aw%C3%B6rd@"+addr, 5*time.Second)
	if strings.Contains(s.String(), "ss") {
		t.Errorf("String() shows the password: %s", s)
	}

	m, _ := voicemail()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := be.messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages", len(msgs))
	}
	got := msgs[0]
	if got.User != "dana@example.com" || got.Pass != "p@ss:wörd" {
		t.Errorf("AUTH credentials = %q / %q", got.User, got.Pass)
	}
	if got.From != "callrelay@localhost" {
		t.Errorf("MAIL FROM = %q", got.From)
	}
	if len(got.Rcpts) != 1 || got.Rcpts[0] != "dana@example.com" {
		t.Errorf("RCPT TO = %q", got.Rcpts)
	}
	checkVoicemail(t, got.Data)

	// What went over SMTP is exactly what Render (and so Dir) produces.
	want, err := mail.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, want) {
		t.Errorf("DATA differs from Render:\n%s\n---\n%s", got.Data, want)
	}
}

func TestSMTP_NoAuthWithoutUser(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be)
	m, _ := voicemail()
	if err := newSMTP(t, "smtp://"+addr, 5*time.Second).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if a := be.authAttempts(); len(a) != 0 {
		t.Errorf("AUTH attempted without a user in the URL: %q", a)
	}
	if n := len(be.messages()); n != 1 {
		t.Errorf("server received %d messages", n)
	}
}

func TestSMTP_ErrDown(t *testing.T) {
	// A port with nothing listening: take a free one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	s := newSMTP(t, "smtp://"+addr, 5*time.Second)
	m, _ := voicemail()
	err = s.Send(context.Background(), m)
	if err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
	if mail.IsPermanent(err) {
		t.Errorf("connection refused is permanent: %v", err)
	}
	if code := mail.ReplyCode(err); code != 0 {
		t.Errorf("ReplyCode = %d", code)
	}

	// The server comes up on that port: the same sender now delivers.
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	be := &backend{}
	serve(t, be, l, nil)
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send after the server came up: %v", err)
	}
	if n := len(be.messages()); n != 1 {
		t.Errorf("server received %d messages", n)
	}
}

func TestSMTP_ErrPermanent(t *testing.T) {
	m, _ := voicemail()
	for _, tc := range []struct {
		name      string
		be        *backend
		url       string // %s: the server's address
		code      int
		permanent bool
	}{
		{"rcpt 550", &backend{rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}}, "smtp://%s", 550, true},
		{"rcpt 451", &backend{rcptErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}}, "smtp://%s", 451, false},
		{"data 554", &backend{dataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message refused"}}, "smtp://%s", 554, true},
		{"data 452", &backend{dataErr: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Mailbox full, later"}}, "smtp://%s", 452, false},
		{"auth 535", &backend{wantUser: "dana", wantPass: "right"}, "smtp://dana:wrong-secret@%s", 535, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startServer(t, tc.be)
			s := newSMTP(t, strings.Replace(tc.url, "%s", addr, 1), 5*time.Second)
			err := s.Send(context.Background(), m)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := mail.IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v (%v)", got, tc.permanent, err)
			}
			if got := mail.ReplyCode(err); got != tc.code {
				t.Errorf("ReplyCode = %d, want %d (%v)", got, tc.code, err)
			}
			if strings.Contains(err.Error(), "wrong-secret") {
				t.Errorf("error shows the password: %v", err)
			}
			if n := len(tc.be.messages()); n != 0 {
				t.Errorf("server stored %d messages", n)
			}
		})
	}
}

// holdingListener accepts connections and never answers on them.
func holdingListener(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		for {
			select {
			case c := <-held:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return l.Addr().String(), held
}

// assertClosedByClient checks that the client has closed its end of c.
func assertClosedByClient(t *testing.T, c net.Conn) {
	t.Helper()
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("client left the connection open: %v", err)
	}
}

func TestSMTP_Timeout(t *testing.T) {
	addr, held := holdingListener(t)
	const timeout = 300 * time.Millisecond
	s := newSMTP(t, "smtp://"+addr, timeout)
	m, _ := voicemail()

	start := time.Now()
	err := s.Send(context.Background(), m)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Send to a silent server succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not say it timed out: %v", err)
	}
	if mail.IsPermanent(err) {
		t.Errorf("timeout is permanent: %v", err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("Send returned after %v; timeout %v", elapsed, timeout)
	}
	assertClosedByClient(t, <-held)
}

func TestSMTP_ContextBounds(t *testing.T) {
	m, _ := voicemail()

	t.Run("deadline", func(t *testing.T) {
		addr, held := holdingListener(t)
		s := newSMTP(t, "smtp://"+addr, time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Send(ctx, m)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("Send returned after %v; ctx deadline 200ms", elapsed)
		}
		assertClosedByClient(t, <-held)
	})

	t.Run("cancel", func(t *testing.T) {
		addr, held := holdingListener(t)
		s := newSMTP(t, "smtp://"+addr, time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		var conn net.Conn
		go func() {
			conn = <-held // the client is connected and waits for the greeting
			cancel()
		}()
		start := time.Now()
		err := s.Send(ctx, m)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want canceled", err)
		}
		if mail.IsPermanent(err) {
			t.Errorf("cancellation is permanent: %v", err)
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("Send returned %v after the cancel", elapsed)
		}
		<-ctx.Done()
		assertClosedByClient(t, conn)
	})

	t.Run("already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := newSMTP(t, "smtp://127.0.0.1:1", time.Minute).Send(ctx, m)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want canceled", err)
		}
	})
}

func TestSMTP_STARTTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	be := &backend{wantUser: "dana", wantPass: "s3cret"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The server offers STARTTLS, and AUTH only once TLS is up.
	serve(t, be, l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	m, _ := voicemail()

	t.Run("untrusted certificate fails, no plain-text fallback", func(t *testing.T) {
		err := newSMTP(t, "smtp://dana:s3cret@"+l.Addr().String(), 5*time.Second).Send(context.Background(), m)
		if err == nil {
			t.Fatal("Send succeeded with an untrusted certificate")
		}
		if mail.IsPermanent(err) {
			t.Errorf("TLS failure is permanent: %v", err)
		}
		if len(be.messages()) != 0 || len(be.authAttempts()) != 0 {
			t.Error("the server got AUTH or a message over an unverified connection")
		}
	})

	t.Run("trusted", func(t *testing.T) {
		s := newSMTP(t, "smtp://dana:s3cret@"+l.Addr().String(), 5*time.Second)
		mail.SetRootCAs(s, pool)
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
		msgs := be.messages()
		if len(msgs) != 1 {
			t.Fatalf("server received %d messages", len(msgs))
		}
		if !msgs[0].TLS {
			t.Error("message was not sent over TLS")
		}
		if msgs[0].User != "dana" || msgs[0].Pass != "s3cret" {
			t.Errorf("AUTH credentials = %q / %q", msgs[0].User, msgs[0].Pass)
		}
		checkVoicemail(t, msgs[0].Data)
	})
}

func TestSMTP_ImplicitTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	be := &backend{wantUser: "dana", wantPass: "s3cret"}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, be, l, nil)

	s := newSMTP(t, "smtps://dana:s3cret@"+l.Addr().String(), 5*time.Second)
	mail.SetRootCAs(s, pool)
	m, _ := voicemail()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := be.messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].User != "dana" {
		t.Fatalf("received %+v", msgs)
	}
	checkVoicemail(t, msgs[0].Data)
}

func TestNewSMTP_Defaults(t *testing.T) {
	for url, want := range map[string]string{
		"smtp://mail.example.com":              "smtp://mail.example.com:587",
		"smtps://mail.example.com":             "smtps://mail.example.com:465",
		"smtp://mail.example.com:2525":         "smtp://mail.example.com:2525",
		"smtp://u%40x:secret@mail.example.com": "smtp://u%40x:xxxxx@mail.example.com:587",
		"SMTP://[::1]:25":                      "smtp://[::1]:25",
	} {
		s, err := mail.NewSMTP(url, 0)
		if err != nil {
			t.Errorf("NewSMTP(%q): %v", url, err)
			continue
		}
		if s.String() != want {
			t.Errorf("NewSMTP(%q) = %s, want %s", url, s, want)
		}
	}
}
