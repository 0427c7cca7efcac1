package mail_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/mail"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestDir_OK(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail", "drop") // missing: Send creates it
	d := mail.NewDir(dir)
	m, _ := voicemail()

	if err := d.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	names := listDir(t, dir)
	if len(names) != 1 || names[0] != "voicemail-42@callrelay.eml" {
		t.Fatalf("drop folder holds %q", names)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o750 != 0 {
		t.Errorf("drop folder mode %o is wider than 0750", perm)
	}

	got, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	want, err := mail.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file differs from Render:\n%s\n---\n%s", got, want)
	}
	checkVoicemail(t, got)

	// A retry with the same Message-ID overwrites the same file.
	if err := d.Send(context.Background(), m); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	m.Text = "changed on retry"
	if err := d.Send(context.Background(), m); err != nil {
		t.Fatalf("third Send: %v", err)
	}
	names = listDir(t, dir)
	if len(names) != 1 {
		t.Fatalf("after three sends of one Message-ID the folder holds %q (temp files left or duplicates)", names)
	}
	got, _ = os.ReadFile(filepath.Join(dir, names[0]))
	if !strings.Contains(string(got), "changed on retry") {
		t.Error("the retry did not replace the file")
	}

	// Without a Message-ID: a new, time-named file.
	m.MessageID = ""
	if err := d.Send(context.Background(), m); err != nil {
		t.Fatalf("Send without Message-ID: %v", err)
	}
	names = listDir(t, dir)
	if len(names) != 2 {
		t.Fatalf("folder holds %q", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".eml") {
			t.Errorf("unexpected file %q", n)
		}
	}
}

func TestDir_SanitisedName(t *testing.T) {
	dir := t.TempDir()
	d := mail.NewDir(dir)
	m, _ := voicemail()
	ids := []string{"<../../etc/passwd@x>", "<..%2F..@x>", "<a/b@x>", "<a_b@x>", "<.hidden@x>"}
	for _, id := range ids {
		m.MessageID = id
		if err := d.Send(context.Background(), m); err != nil {
			t.Fatalf("Send %s: %v", id, err)
		}
	}
	names := listDir(t, dir)
	if len(names) != len(ids) {
		t.Fatalf("%d ids gave files %q", len(ids), names)
	}
	for _, n := range names {
		if strings.ContainsAny(n, "/\\") || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".eml") {
			t.Errorf("unsafe file name %q", n)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a_b@x.eml")); err != nil {
		t.Errorf("a clean id does not give its own name: %v", err)
	}
}

func TestDir_Unwritable(t *testing.T) {
	// A path under a regular file can never be created, even by root.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, _ := voicemail()
	err := mail.NewDir(filepath.Join(file, "mail")).Send(context.Background(), m)
	if err == nil {
		t.Fatal("Send into an impossible folder succeeded")
	}
	if mail.IsPermanent(err) {
		t.Errorf("a file-system error is permanent: %v", err)
	}

	// A folder that exists but cannot be written (skipped as root, who
	// writes anywhere).
	if os.Geteuid() != 0 {
		ro := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		if err := mail.NewDir(ro).Send(context.Background(), m); err == nil {
			t.Error("Send into a read-only folder succeeded")
		}
	}
}

func TestDir_InvalidMessage(t *testing.T) {
	dir := t.TempDir()
	m, _ := voicemail()
	m.To = "not an address"
	err := mail.NewDir(dir).Send(context.Background(), m)
	if !errors.Is(err, mail.ErrInvalidMessage) || !mail.IsPermanent(err) {
		t.Errorf("err = %v, want a permanent ErrInvalidMessage", err)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("folder holds %q", names)
	}
}

func TestDir_ContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, _ := voicemail()
	if err := mail.NewDir(t.TempDir()).Send(ctx, m); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want canceled", err)
	}
}
