// Package logwriter provides an io.Writer that lets the program go on while its log is
// written: lines are kept in memory and one goroutine writes them out in order.
//
// callrelay logs every request, and slog's handler writes each line under a lock. When the
// sink stalls (a log file on a disk that is writing back, a log collector reading slowly),
// every request waiting to log waits with it: 40-65 ms every one or two seconds under load,
// measured (docs/performance.md). With this writer a request waits only when Max bytes of
// lines are already waiting: nothing is dropped, and a sink that never recovers still slows
// the program down rather than filling its memory.
package logwriter

import (
	"io"
	"sync"
)

// DefaultMax is how many bytes of lines may wait: at about 250 bytes a line, some 4,000
// lines, half a second of callrelay's request log at its peak.
const DefaultMax = 1 << 20

// Writer writes to an io.Writer from a goroutine of its own. Each Write is kept whole and in
// order. It is safe for concurrent use.
type Writer struct {
	out io.Writer
	max int

	mu      sync.Mutex
	ready   sync.Cond // lines are waiting, or the writer is closing
	space   sync.Cond // the goroutine has taken the waiting lines
	pending []byte
	closed  bool
	err     error // the sink's first error
	done    chan struct{}
	direct  sync.Mutex // after Close: one Write at a time to the sink

	waits func() // tests: called when a Write waits for room
}

// New starts a Writer to out that keeps up to max bytes waiting (DefaultMax when max <= 0).
// Close it to write what is waiting and stop its goroutine.
func New(out io.Writer, max int) *Writer {
	if max <= 0 {
		max = DefaultMax
	}
	w := &Writer{out: out, max: max, done: make(chan struct{})}
	w.ready.L, w.space.L = &w.mu, &w.mu
	go w.loop()
	return w
}

// Write keeps a copy of p to be written, and returns at once unless Max bytes are already
// waiting. After Close it writes p itself. It reports the sink's first error, once seen.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for !w.closed && len(w.pending) > 0 && len(w.pending)+len(p) > w.max {
		if w.waits != nil {
			w.waits()
		}
		w.space.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		<-w.done // after what was waiting
		w.direct.Lock()
		defer w.direct.Unlock()
		return w.out.Write(p)
	}
	err := w.err
	w.pending = append(w.pending, p...)
	w.ready.Signal()
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// loop writes out what is waiting, outside the lock, so that Write never waits for the sink.
func (w *Writer) loop() {
	defer close(w.done)
	var spare []byte
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && !w.closed {
			w.ready.Wait()
		}
		if len(w.pending) == 0 { // closed, and all written
			w.mu.Unlock()
			return
		}
		lines := w.pending
		w.pending = spare[:0]
		w.space.Broadcast()
		w.mu.Unlock()

		_, err := w.out.Write(lines)
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
		spare = lines
	}
}

// Close writes what is waiting and stops the goroutine; later Writes go straight to the sink.
// It returns the sink's first error.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	w.ready.Signal()
	w.space.Broadcast()
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
