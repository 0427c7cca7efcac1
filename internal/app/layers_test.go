package app_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/callrelay/callrelay/"

// layers is docs/architecture.md's table: each package and the packages of callrelay's own it
// may import (test-only imports aside). A package missing here fails the test: a new package
// takes its place in the table, and in the doc.
func layers() map[string][]string {
	domain := []string{"internal/callrelay"}
	tools := []string{"internal/phone", "internal/signature", "internal/mail", "internal/spool", "internal/background"}
	edges := []string{"internal/twiml", "internal/twilioapi", "internal/recording"}
	storage := []string{"internal/postgres", "migrations"}
	services := []string{"internal/conference", "internal/hold", "internal/voicemail", "internal/events", "internal/recordings"}
	upTo := func(groups ...[]string) []string { return slices.Concat(groups...) }
	m := map[string][]string{
		"internal/callrelay":       nil,
		"internal/clocktest":       nil,
		"migrations":               nil,
		"third_party/twilio":       nil,
		"internal/mail/mailtest":   {"internal/mail"},
		"internal/postgres/pgtest": upTo(storage),
		"internal/twiml/twimltest": {"third_party/twilio"},
		"internal/config":          upTo(domain, tools, edges, storage, services),
		"internal/server":          upTo(domain, tools, edges, storage, services, []string{"internal/config"}),
		"internal/app":             upTo(domain, tools, edges, storage, services, []string{"internal/config", "internal/server"}),
		"cmd/callrelay":            {"internal/app", "internal/config", "internal/postgres", "internal/server"},
		"internal/twiliofake":      {"internal/signature", "third_party/twilio"},
		"internal/twiliosim":       {"internal/twiliofake", "internal/signature", "third_party/twilio"},
		"cmd/callsim":              {"internal/twiliosim"},
		"scripts/demo/mailprint":   nil,
		"scripts/loadtest/webhook": {"internal/signature", "internal/twiml"},
		"scripts/loadtest/gen":     {"scripts/loadtest/webhook"},
		"scripts/loadtest/soak":    {"scripts/loadtest/webhook"},
		"scripts/loadtest/console": nil,
	}
	for _, p := range tools {
		m[p] = nil
	}
	for _, p := range edges {
		m[p] = domain
	}
	m["internal/postgres"] = upTo(domain, []string{"migrations"})
	// Services reach the store through the domain's interfaces (callrelay.ConferenceStore, …),
	// never its package; the voicemail queue's one exception is River's clock.
	for _, p := range services {
		m[p] = upTo(domain, tools, edges)
	}
	m["internal/voicemail"] = upTo(domain, tools, edges, []string{"internal/postgres"})
	return m
}

// TestLayers: every package imports only what its layer may (docs/architecture.md).
func TestLayers(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go is not on PATH")
		}
		t.Skip("go is not on PATH")
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := layers()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		may, known := allowed[pkg]
		if !known {
			t.Errorf("%s is in no layer: add it to docs/architecture.md and to this test", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			own, ok := strings.CutPrefix(imp, module)
			if ok && !slices.Contains(may, own) {
				t.Errorf("%s imports %s: its layer may not (docs/architecture.md)", pkg, own)
			}
		}
	}
}
