// Package twiliospec carries Twilio's own contracts, vendored in this directory (see README.md
// for where each came from, its licence and the one patch), embedded so that tests, the fake and
// the simulator need nothing outside the repository.
package twiliospec

import (
	"embed"
	"io/fs"
)

// OpenAPI is Twilio's OpenAPI 3 spec of the 2010-04-01 REST API (twilio_api_v2010.json).
//
//go:embed twilio-openapi/twilio_api_v2010.json
var OpenAPI []byte

// XSDMain is the name, within XSD, of the TwiML schema to validate against; it includes or
// imports the other files of XSD by relative path.
const XSDMain = "twiml_v20100401_twilioRealtimeCallSchema.xsd"

//go:embed twiml-xsd/*.xsd
var xsd embed.FS

// XSD is the TwiML schema set (XSDMain and the files it reaches), at the root of the FS.
var XSD fs.FS = mustSub(xsd, "twiml-xsd")

// SignatureVectors is signature-vectors.md: X-Twilio-Signature values computed by Twilio's
// own libraries.
//
//go:embed signature-vectors.md
var SignatureVectors string

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return sub
}
