// Package mailtest runs a real SMTP server over TCP for tests: it records what it receives and
// can be taken down and brought back up on the same address, to test delivery retries.
package mailtest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one delivered email.
type Message struct {
	From string
	To   []string
	Data []byte
}

// Server is an SMTP server on 127.0.0.1.
type Server struct {
	t    testing.TB
	addr string

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	received []Message
	arrived  chan Message
}

// Start runs a server on a free port, stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := StartDown(t)
	s.Up()
	return s
}

// StartDown reserves an address with no server on it yet (SMTP down); Up starts it.
func StartDown(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	s := &Server{t: t, addr: ln.Addr().String(), arrived: make(chan Message, 100)}
	if err := ln.Close(); err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL is the SMTP_URL of the server.
func (s *Server) URL() string { return "smtp://" + s.addr }

// Stop closes the server: connections are refused until Up.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		// Close the listener too: Serve may not have registered it with the server yet.
		_ = ln.Close()
		_ = srv.Close()
	}
}

// Up starts the server again on the same address.
func (s *Server) Up() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("mailtest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(backend{s})
	srv.Domain = "mailtest.local"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.AllowInsecureAuth = true
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Next waits for the next delivered email, failing the test after timeout.
func (s *Server) Next(timeout time.Duration) Message {
	s.t.Helper()
	select {
	case m := <-s.arrived:
		return m
	case <-time.After(timeout):
		s.t.Fatalf("mailtest: no email within %s", timeout)
		return Message{}
	}
}

// Received returns every email delivered so far.
func (s *Server) Received() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.received...)
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s   *Server
	cur Message
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error { ss.cur.From = from; return nil }
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.cur.To = append(ss.cur.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return errors.New("mailtest: read data")
	}
	ss.cur.Data = data
	ss.s.mu.Lock()
	ss.s.received = append(ss.s.received, ss.cur)
	ss.s.mu.Unlock()
	ss.s.arrived <- ss.cur
	return nil
}

func (ss *session) Reset()        { ss.cur = Message{} }
func (ss *session) Logout() error { return nil }
