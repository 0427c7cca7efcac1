package twiliospec

import (
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
)

func TestEmbedded(t *testing.T) {
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("OpenAPI: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) == 0 {
		t.Errorf("OpenAPI: openapi %q with %d paths, want 3.x with paths", doc.OpenAPI, len(doc.Paths))
	}
	// The main schema reaches the others by relative path: all must be in the set.
	for _, name := range []string{XSDMain, "twilio-extensions.xsd", "synthesis-nonamespace.xsd", "xml.xsd"} {
		b, err := fs.ReadFile(XSD, name)
		if err != nil {
			t.Errorf("XSD: %v", err)
		} else if !strings.Contains(string(b), "http://www.w3.org/2001/XMLSchema") {
			t.Errorf("XSD %s: not an XML Schema", name)
		}
	}
	if !strings.Contains(SignatureVectors, "X-Twilio-Signature") {
		t.Error("SignatureVectors: not the vectors file")
	}
}
