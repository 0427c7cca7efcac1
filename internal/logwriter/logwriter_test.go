package logwriter

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sink records each Write it gets as one chunk; with gate set, each Write first says it has
// begun (entered) and then waits for the test (gate).
type sink struct {
	mu      sync.Mutex
	chunks  []string
	entered chan struct{}
	gate    chan struct{}
	err     error
}

func (s *sink) Write(p []byte) (int, error) {
	if s.gate != nil {
		s.entered <- struct{}{}
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks = append(s.chunks, string(p))
	if s.err != nil {
		return 0, s.err
	}
	return len(p), nil
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.chunks)
}

// TestWriter_OK: a Write returns while the sink is stuck; every line reaches it, whole and
// in order, by Close.
func TestWriter_OK(t *testing.T) {
	out := &sink{entered: make(chan struct{}), gate: make(chan struct{})}
	w := New(out, 0)
	if _, err := w.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	<-out.entered // the goroutine is stuck in the sink with "one"
	var lines []string
	for i := range 100 {
		line := strings.Repeat("x", i) + "\n"
		lines = append(lines, line)
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(line))
		}
	}
	go func() {
		for range out.entered {
			out.gate <- struct{}{}
		}
	}()
	out.gate <- struct{}{}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(out.entered)
	if got, want := strings.Join(out.got(), ""), "one\n"+strings.Join(lines, ""); got != want {
		t.Errorf("the sink got %q, want %q", got, want)
	}
	// After Close, a Write goes to the sink itself.
	out.gate = nil
	if _, err := w.Write([]byte("late\n")); err != nil {
		t.Fatal(err)
	}
	if got := out.got(); got[len(got)-1] != "late\n" {
		t.Errorf("last chunk %q, want the late line", got[len(got)-1])
	}
}

// TestWriter_full: with max bytes waiting, a Write waits for room instead of dropping its line.
func TestWriter_full(t *testing.T) {
	out := &sink{entered: make(chan struct{}), gate: make(chan struct{})}
	w := New(out, 10)
	waiting := make(chan struct{})
	w.waits = func() { close(waiting) } // called with w.mu held, once (one waiter)
	_, _ = w.Write([]byte("a1234567\n"))
	<-out.entered // "a…" is being written
	_, _ = w.Write([]byte("b1234567\n"))
	third := make(chan struct{})
	go func() {
		_, _ = w.Write([]byte("c1234567\n")) // 18 bytes would be waiting: more than 10
		close(third)
	}()
	select {
	case <-waiting:
	case <-third:
		t.Fatal("the third Write returned with no room for it")
	}
	go func() {
		for range out.entered {
			out.gate <- struct{}{}
		}
	}()
	out.gate <- struct{}{}
	<-third
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(out.entered)
	// "b" left alone once the goroutine took it, and only then "c" came in.
	if got, want := out.got(), []string{"a1234567\n", "b1234567\n", "c1234567\n"}; !slices.Equal(got, want) {
		t.Errorf("chunks %q, want %q", got, want)
	}
}

// TestWriter_sinkError: the sink's error is told by the next Writes and by Close.
func TestWriter_sinkError(t *testing.T) {
	bad := errors.New("disk full")
	out := &sink{err: bad}
	w := New(out, 0)
	_, _ = w.Write([]byte("one\n"))
	if err := w.Close(); !errors.Is(err, bad) {
		t.Errorf("Close = %v, want %v", err, bad)
	}
	if got := out.got(); len(got) != 1 || got[0] != "one\n" {
		t.Errorf("the sink got %q, want the one line", got)
	}
}
