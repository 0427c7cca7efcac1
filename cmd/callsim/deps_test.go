package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The simulator is a program, not a test: linking the testing package would register its flags
// (-test.v ...) on callsim's command line and grow the binary. twiliofake, which it uses, is
// also a test helper, so this is easy to break.
func TestNoTestingPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	if deps := strings.Fields(string(out)); slices.Contains(deps, "testing") {
		t.Error("cmd/callsim links the testing package (go list -deps . | grep -x testing)")
	}
}
