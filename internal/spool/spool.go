// Package spool keeps the Twilio callbacks that callrelay could not store while PostgreSQL
// was unreachable, on local disk, and replays them once it is back.
//
// Twilio retries a webhook only a few times and for about 15 s in all, so a longer database
// outage would lose status callbacks, recordings and transcripts. A replica therefore accepts
// such a callback, writes it to its spool directory (one file per request, fsync'd before the
// answer), and its Replayer feeds the files back through the same HTTP handler, in arrival
// order, when the database answers again. Files survive a restart of the process; each
// replica needs a directory of its own on a persistent volume (a lock file refuses a second
// process). Events may reach the store late and, across replicas, out of order: callrelay
// already applies callbacks by SequenceNumber/Timestamp and idempotently.
package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Entry is one webhook request as callrelay received it.
type Entry struct {
	// Target is the request's path and query, as signed by Twilio.
	Target string `json:"target"`
	// Form is the POST form.
	Form url.Values `json:"form"`
	// Received is when callrelay received it: the time of the event when the callback has no
	// Timestamp of its own.
	Received time.Time `json:"received"`
}

// DefaultMaxEntries bounds a spool: past it, callbacks are refused (Twilio may retry them)
// rather than filling the disk.
const DefaultMaxEntries = 100_000

// ErrFull is returned by Put when the spool holds MaxEntries files.
var ErrFull = errors.New("spool is full")

const suffix = ".json"

// Spool is a directory of pending entries. Its methods are safe for concurrent use.
type Spool struct {
	dir  string
	lock *os.File
	// MaxEntries caps the entries kept (DefaultMaxEntries when Open returns).
	MaxEntries int

	seq   atomic.Uint64
	count atomic.Int64
	mu    sync.Mutex // serialises directory reads with removals
}

// Open opens (creating it if needed) the spool in dir and locks it for this process.
func Open(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool %s is in use by another process (each replica needs its own directory): %w", dir, err)
	}
	s := &Spool{dir: dir, lock: lock, MaxEntries: DefaultMaxEntries}
	names, err := s.List()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.count.Store(int64(len(names)))
	// Leftovers of a write cut short by a crash: never renamed into place, never answered.
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	return s, nil
}

// Close releases the directory's lock.
func (s *Spool) Close() error { return s.lock.Close() }

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Len is the number of entries waiting.
func (s *Spool) Len() int { return int(s.count.Load()) }

// Put stores e durably: when it returns nil, the entry is on disk and survives a crash.
func (s *Spool) Put(e Entry) error {
	if s.count.Add(1) > int64(s.MaxEntries) {
		s.count.Add(-1)
		return ErrFull
	}
	b, err := json.Marshal(e)
	if err != nil {
		s.count.Add(-1)
		return fmt.Errorf("spool: encode: %w", err)
	}
	// Names sort in arrival order: receive time, then a per-process counter.
	name := fmt.Sprintf("%020d-%010d%s", e.Received.UnixNano(), s.seq.Add(1), suffix)
	if err := s.write(name, b); err != nil {
		s.count.Add(-1)
		return err
	}
	return nil
}

// write puts b in a temporary file, syncs it, renames it into place and syncs the directory.
func (s *Spool) write(name string, b []byte) error {
	tmp := filepath.Join(s.dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: write %s: %w", name, werr)
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("spool: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync directory: %w", err)
	}
	return nil
}

// List returns the names of the entries waiting, oldest first.
func (s *Spool) List() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, de := range des {
		if n := de.Name(); strings.HasSuffix(n, suffix) && de.Type().IsRegular() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Read returns the entry stored under name.
func (s *Spool) Read(name string) (Entry, error) {
	var e Entry
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return e, fmt.Errorf("spool: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("spool: %s: %w", name, err)
	}
	return e, nil
}

// Remove deletes an entry once it has been applied.
func (s *Spool) Remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.count.Add(-1)
	return nil
}

// setAside moves an entry that can never be applied (unreadable, or refused by callrelay)
// out of the way, into the spool's "rejected" folder, for someone to look at.
func (s *Spool) setAside(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rej := filepath.Join(s.dir, "rejected")
	if err := os.MkdirAll(rej, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(filepath.Join(s.dir, name), filepath.Join(rej, name)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.count.Add(-1)
	return nil
}

// replayKey marks a request as a replay from the spool.
type replayKey struct{}

// Replay is what a handler learns about a replayed request. Only this process can put one in
// a request's context: the request passed callrelay's signature check when it first came.
type Replay struct {
	Received time.Time
}

// WithReplay returns ctx marked as a replay of an entry.
func WithReplay(ctx context.Context, r Replay) context.Context {
	return context.WithValue(ctx, replayKey{}, r)
}

// ReplayOf returns the replay a request's context carries; ok is false for a live request.
func ReplayOf(ctx context.Context) (r Replay, ok bool) {
	r, ok = ctx.Value(replayKey{}).(Replay)
	return r, ok
}
