// Package recordings keeps callrelay's own copy of each voicemail's audio (issue 19): a job
// copies a completed recording from Twilio into a blob store (gocloud.dev/blob: a folder,
// S3 or an S3-compatible store), verifies it by size and SHA-256, and only then deletes
// Twilio's copy; a periodic job expires voicemails past their number's retention. A store or
// Twilio outage delays the copy and the deletion, retried by the job queue: Twilio's copy is
// never deleted before ours is verified, so the audio is never lost on the way.
package recordings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:///path
	_ "gocloud.dev/blob/s3blob"   // s3://bucket?region=…&endpoint=…
	"gocloud.dev/gcerrors"

	"github.com/callrelay/callrelay/internal/recording"
)

// ErrTooLarge: the recording is larger than the limit; recording.ErrTooLarge itself, so that
// a caller tells it apart the same way whichever copy it read.
var ErrTooLarge = recording.ErrTooLarge

// ErrMismatch: what the store holds is not what was written (size or SHA-256 differ).
var ErrMismatch = errors.New("recordings: stored copy does not match")

// Store is callrelay's recording store. It is safe for concurrent use.
type Store struct {
	bucket *blob.Bucket
	where  string // the URL without its query, for logs
}

// Open opens the store at rawURL (CALLRELAY_RECORDINGS_URL): file:///var/lib/callrelay/recordings
// (created if missing), or s3://bucket?region=…[&endpoint=…&use_path_style=true] for S3 and
// S3-compatible stores (MinIO, R2), with AWS's usual credentials (AWS_ACCESS_KEY_ID…).
func Open(ctx context.Context, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("recordings: store URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		// A folder is made on first use, and holds no ".attrs" sidecar files: the content
		// type and checksum are kept in the database.
		q := u.Query()
		if !q.Has("create_dir") {
			q.Set("create_dir", "true")
		}
		if !q.Has("metadata") {
			q.Set("metadata", "skip")
		}
		if !q.Has("no_tmp_dir") {
			// Temporary files next to the final ones: the rename that publishes a copy
			// stays on one file system.
			q.Set("no_tmp_dir", "true")
		}
		u.RawQuery = q.Encode()
	case "s3":
	default:
		return nil, fmt.Errorf("recordings: store URL scheme %q: want file:// or s3://", u.Scheme)
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("recordings: open store: %w", err)
	}
	where := *u
	where.RawQuery, where.User = "", nil
	return &Store{bucket: b, where: where.String()}, nil
}

// String is where the store is, without credentials or options.
func (s *Store) String() string { return s.where }

// Close releases the store.
func (s *Store) Close() error { return s.bucket.Close() }

// Put writes r, at most maxBytes of it, as key and returns its size and SHA-256 (hex). A
// failed write leaves no object (gocloud's writer publishes on a successful Close only).
func (s *Store) Put(ctx context.Context, key, contentType string, r io.Reader, maxBytes int64) (int64, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a write abandoned by cancelling its context is discarded
	w, err := s.bucket.NewWriter(ctx, key, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return 0, "", fmt.Errorf("recordings: write %s: %w", key, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, maxBytes+1))
	if err == nil && n > maxBytes {
		err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	if err != nil {
		cancel()
		_ = w.Close()
		return 0, "", fmt.Errorf("recordings: write %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return 0, "", fmt.Errorf("recordings: write %s: %w", key, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Verify reads key back whole and checks its size and SHA-256.
func (s *Store) Verify(ctx context.Context, key string, size int64, sha string) error {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return fmt.Errorf("recordings: verify %s: %w", key, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("recordings: verify %s: %w", key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sha {
		return fmt.Errorf("%w: %s is %d bytes, SHA-256 %s; want %d bytes, %s", ErrMismatch, key, n, got, size, sha)
	}
	return nil
}

// NewReader opens key for reading; the reader seeks (io.ReadSeeker), for HTTP Range.
func (s *Store) NewReader(ctx context.Context, key string) (*blob.Reader, error) {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, fmt.Errorf("recordings: read %s: %w", key, err)
	}
	return r, nil
}

// ReadAll reads key whole, at most maxBytes of it (ErrTooLarge past that).
func (s *Store) ReadAll(ctx context.Context, key string, maxBytes int64) ([]byte, error) {
	r, err := s.NewReader(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, r.Size(), maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("recordings: read %s: %w", key, err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	return data, nil
}

// Delete removes key; one that does not exist is deleted already.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("recordings: delete %s: %w", key, err)
	}
	return nil
}

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }
