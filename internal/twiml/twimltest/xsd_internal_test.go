package twimltest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	twiliospec "github.com/callrelay/callrelay/third_party/twilio"
)

// TestWriteXSD: the vendored schema set lands on disk whole, runs share one copy, and a damaged
// shared copy is not used.
func TestWriteXSD(t *testing.T) {
	tmp := t.TempDir()
	p, err := writeXSD(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != XSDName {
		t.Errorf("writeXSD = %s, want a path to %s", p, XSDName)
	}
	checkSet(t, filepath.Dir(p))

	again, err := writeXSD(tmp)
	if err != nil || again != p {
		t.Errorf("second writeXSD = %s, %v; want the same copy %s", again, err, p)
	}

	// Damage the shared copy: the next call must not validate against it.
	bad := filepath.Join(filepath.Dir(p), "xml.xsd")
	if err := os.Chmod(bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("<not a schema/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	private, err := writeXSD(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if private == p {
		t.Fatalf("writeXSD after damage = %s, the damaged copy", private)
	}
	checkSet(t, filepath.Dir(private))
}

// checkSet fails unless dir holds exactly the vendored XSD files.
func checkSet(t *testing.T, dir string) {
	t.Helper()
	names, err := fs.Glob(twiliospec.XSD, "*")
	if err != nil || len(names) < 4 {
		t.Fatalf("vendored XSD set: %v, %v", names, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(names) {
		t.Errorf("%s holds %d files, want %d", dir, len(entries), len(names))
	}
	for _, name := range names {
		want, _ := fs.ReadFile(twiliospec.XSD, name)
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s/%s: differs from the vendored file (err %v)", dir, name, err)
		}
	}
}
