package mail

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Dir writes each message as an .eml file into a folder (the drop folder used
// when no SMTP server is configured). It is safe for concurrent use.
type Dir struct {
	dir string
}

// NewDir returns a Dir sender on dir; dir is created (0o750) on the first
// send when it is missing.
func NewDir(dir string) *Dir { return &Dir{dir: dir} }

// String is the folder, for logs.
func (d *Dir) String() string { return d.dir }

// maxNameLen bounds the part of a file name taken from the Message-ID.
const maxNameLen = 150

// Send writes the rendered message to <dir>/<name>.eml, where name is the
// Message-ID made safe for a file name (the same Message-ID always gives the
// same file, which a retry overwrites) or, without a Message-ID, its Date in
// UTC and a random suffix. The file appears whole or not at all: it is written to
// a temporary file in the same folder, synced, and renamed into place.
func (d *Dir) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: drop folder %s: %w", d.dir, err)
	}
	data, err := Render(m)
	if err != nil {
		return err
	}
	name, err := d.fileName(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o750); err != nil {
		return fmt.Errorf("mail: drop folder: %w", err)
	}
	if err := writeAtomic(d.dir, name, data); err != nil {
		return fmt.Errorf("mail: drop folder: %w", err)
	}
	return nil
}

func (d *Dir) fileName(m Message) (string, error) {
	if m.MessageID == "" {
		var rnd [4]byte
		_, _ = rand.Read(rnd[:])
		return m.Date.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(rnd[:]) + ".eml", nil
	}
	id, err := cleanMessageID(m.MessageID)
	if err != nil {
		return "", err
	}
	return sanitizeName(id) + ".eml", nil
}

// sanitizeName keeps [A-Za-z0-9@._+=-] of id and replaces anything else by
// '_' (a leading '.' too: no hidden files, no ".."). When that changed the
// id, or it was too long, a hash of the whole id is appended so that two
// different ids never share a file.
func sanitizeName(id string) string {
	var b strings.Builder
	lossy := false
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '@' || c == '.' || c == '_' || c == '+' || c == '=' || c == '-'
		if i == 0 && c == '.' {
			ok = false
		}
		if !ok {
			c = '_'
			lossy = true
		}
		b.WriteByte(c)
	}
	name := b.String()
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
		lossy = true
	}
	if lossy {
		sum := sha256.Sum256([]byte(id))
		name += "-" + hex.EncodeToString(sum[:8])
	}
	return name
}

// writeAtomic writes data to dir/name through a synced temporary file in dir
// and a rename, then syncs dir so the rename survives a crash.
func writeAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, ".tmp-*.eml")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(0o640); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	// Best effort: the file is in place whatever this says, and some file
	// systems do not sync directories.
	if df, derr := os.Open(dir); derr == nil {
		_ = df.Sync()
		_ = df.Close()
	}
	return nil
}
