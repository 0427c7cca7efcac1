// Package mailtest runs a real SMTP server over TCP for tests: it records what it receives, can
// be taken down and brought back up on the same address (to test delivery retries), and can be
// made slow in the ways that test a client's timeouts (see Fault).
package mailtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
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

// Fault is how a running server misbehaves.
type Fault int

const (
	// Healthy answers as an SMTP server should.
	Healthy Fault = iota
	// Silent accepts connections and never says a word, not even its greeting: an overloaded
	// server, or a dead one behind a load balancer that still accepts.
	Silent
	// StallData talks normally up to the message, reads it whole and never answers it: the
	// client cannot tell whether it was delivered. It is not: when the stall ends the server
	// answers 451 (try again later), for a client that is still waiting.
	StallData
)

// Server is an SMTP server on 127.0.0.1.
type Server struct {
	t    testing.TB
	addr string

	mu       sync.Mutex
	srv      *smtp.Server
	ln       net.Listener
	served   chan struct{} // closed when srv's Serve has returned
	hold     *PortHold     // while down: the port, bound and refusing
	fault    Fault
	held     []net.Conn    // connections the Silent fault keeps waiting
	release  chan struct{} // closed when the current stalls end
	received []Message
	arrived  chan Message
	stalls   chan struct{} // one per client stalled
}

// Start runs a server on a free port, stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := StartDown(t)
	s.Up()
	return s
}

// StartDown reserves an address with no server on it yet (SMTP down: connections are
// refused); Up starts it.
func StartDown(t testing.TB) *Server {
	t.Helper()
	hold, err := HoldPort("127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	s := &Server{t: t, addr: hold.Addr(), hold: hold, arrived: make(chan Message, 100),
		release: make(chan struct{}), stalls: make(chan struct{}, 100)}
	t.Cleanup(func() {
		// The test is over: nothing needs the port held any more (holding it again could
		// fail, an outgoing connection's ephemeral port having taken it meanwhile).
		s.stop(false)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.hold != nil {
			s.hold.Close()
		}
	})
	return s
}

// URL is the SMTP_URL of the server.
func (s *Server) URL() string { return "smtp://" + s.addr }

// Stop closes the server: connections are refused until Up. Stalled clients are let go. The
// port stays bound meanwhile, so that no other test's listener takes it.
func (s *Server) Stop() { s.stop(true) }

// stop closes the server; with hold, it binds the port again until Up.
func (s *Server) stop(hold bool) {
	s.mu.Lock()
	srv, ln, served := s.srv, s.ln, s.served
	s.srv, s.ln = nil, nil
	s.fault = Healthy
	s.endStallsLocked()
	s.mu.Unlock()
	if srv == nil {
		return
	}
	// Close the listener too: Serve may not have registered it with the server yet.
	_ = ln.Close()
	_ = srv.Close()
	// The listening socket is closed for good only once its Accept has returned: until then
	// the port cannot be held.
	<-served
	if !hold {
		return
	}
	h, err := HoldPort(s.addr)
	if err != nil {
		s.t.Errorf("mailtest: %v", err)
	}
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
}

// Up starts the server again on the same address, or, when it is running, makes it healthy
// again: stalled clients are let go (a Silent server's connections are closed).
func (s *Server) Up() {
	s.t.Helper()
	s.mu.Lock()
	running := s.srv != nil
	s.fault = Healthy
	s.endStallsLocked()
	s.mu.Unlock()
	if running {
		return
	}
	s.mu.Lock()
	if s.hold != nil {
		s.hold.Close()
		s.hold = nil
	}
	s.mu.Unlock()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("mailtest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// SetFault makes the server misbehave from now on, starting it if it is down. Clients stalled
// by an earlier fault are let go.
func (s *Server) SetFault(f Fault) {
	s.t.Helper()
	s.Up()
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Stalled waits until a client is being stalled by the fault, failing the test after timeout.
func (s *Server) Stalled(timeout time.Duration) {
	s.t.Helper()
	select {
	case <-s.stalls:
	case <-time.After(timeout):
		s.t.Fatalf("mailtest: no client stalled within %s", timeout)
	}
}

// endStallsLocked lets every stalled client go. s.mu is held.
func (s *Server) endStallsLocked() {
	close(s.release)
	s.release = make(chan struct{})
	for _, c := range s.held {
		_ = c.Close()
	}
	s.held = nil
}

// stalledLocked notes a client stalled. s.mu is held.
func (s *Server) stalledLocked() {
	select {
	case s.stalls <- struct{}{}:
	default:
	}
}

func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(backend{s})
	srv.Domain = "mailtest.local"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.AllowInsecureAuth = true
	served := make(chan struct{})
	s.mu.Lock()
	s.srv, s.ln, s.served = srv, ln, served
	s.mu.Unlock()
	go func() {
		defer close(served)
		_ = srv.Serve(faultListener{Listener: ln, s: s})
	}()
}

// faultListener keeps the connections a Silent server accepts from the SMTP server.
type faultListener struct {
	net.Listener
	s *Server
}

func (l faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		silent := l.s.fault == Silent
		if silent {
			l.s.held = append(l.s.held, c)
			l.s.stalledLocked()
		}
		l.s.mu.Unlock()
		if !silent {
			return c, nil
		}
	}
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
	ss.s.mu.Lock()
	if ss.s.fault == StallData {
		// The whole message is read, its final "." too: the client waits for the answer.
		release := ss.s.release
		ss.s.stalledLocked()
		ss.s.mu.Unlock()
		<-release
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "mailtest: stalled message not delivered"}
	}
	ss.cur.Data = data
	ss.s.received = append(ss.s.received, ss.cur)
	ss.s.mu.Unlock()
	ss.s.arrived <- ss.cur
	return nil
}

func (ss *session) Reset()        { ss.cur = Message{} }
func (ss *session) Logout() error { return nil }

// PortHold keeps a TCP port on 127.0.0.1 bound without listening on it: connections to it are
// refused (the kernel answers them with a reset), as to a server that is down. Unlike a
// listener closed until the server comes back, it keeps the port: the kernel gives a bound
// port to no other socket asking for a free one, so no other test (of this process or of
// another on the machine) can take the address meanwhile and answer in the server's place.
type PortHold struct {
	fd   int
	addr string
}

// HoldPort binds addr ("127.0.0.1:PORT", or port 0 for a free one) and holds it.
func HoldPort(addr string) (*PortHold, error) {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil || ap.IP.To4() == nil {
		return nil, fmt.Errorf("hold port %s: not an IPv4 address: %v", addr, err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, syscall.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("hold port %s: %w", addr, err)
	}
	syscall.CloseOnExec(fd)
	// As net.Listen does: the server's closed connections may still be in TIME_WAIT on it.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("hold port %s: %w", addr, err)
	}
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("hold port %s: %w", addr, err)
	}
	bound, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("hold port %s: %w", addr, err)
	}
	in4 := bound.(*syscall.SockaddrInet4)
	return &PortHold{fd: fd, addr: net.JoinHostPort(net.IP(in4.Addr[:]).String(), fmt.Sprint(in4.Port))}, nil
}

// Addr is the held address, host:port.
func (h *PortHold) Addr() string { return h.addr }

// Close releases the port (a nil PortHold is fine).
func (h *PortHold) Close() {
	if h != nil {
		_ = syscall.Close(h.fd)
	}
}
