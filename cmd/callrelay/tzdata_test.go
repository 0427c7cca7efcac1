package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The distroless image has a zone database, but a binary copied elsewhere (scratch, an old
// host) must read CALLRELAY_TIME_ZONE and time_zone the same way: the zones are linked in.
func TestTimeZoneDatabaseLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	if deps := strings.Fields(string(out)); !slices.Contains(deps, "time/tzdata") {
		t.Error("cmd/callrelay does not link time/tzdata (import _ \"time/tzdata\" in main.go)")
	}
}
