// Package twimltest helps tests check TwiML documents: parse them into a tree to assert on,
// validate them against Twilio's XSD with xmllint, and print them in a stable form for golden
// files (twilio-go writes attributes in map order, so raw output is never comparable).
package twimltest

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	twiliospec "github.com/callrelay/callrelay/third_party/twilio"
)

// Declaration is the XML declaration twilio-go writes at the start of every document.
const Declaration = `<?xml version="1.0" encoding="UTF-8"?>`

// Node is an element of a parsed document.
type Node struct {
	Name  string
	Attrs map[string]string
	// Text is the character data directly inside the element. Whitespace-only text between
	// child elements (indentation) is dropped.
	Text     string
	Children []*Node
}

// Parse parses a TwiML document and fails the test when it is not well-formed XML or its root
// is not <Response>.
func Parse(t testing.TB, doc []byte) *Node {
	t.Helper()
	n, err := parse(doc)
	if err != nil {
		t.Fatalf("twimltest: %v\n%s", err, doc)
	}
	if n.Name != "Response" {
		t.Fatalf("twimltest: root element is <%s>, want <Response>\n%s", n.Name, doc)
	}
	return n
}

// parse returns the root element of doc.
func parse(doc []byte) (*Node, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var root *Node
	var stack []*Node
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &Node{Name: qname(tok.Name), Attrs: make(map[string]string, len(tok.Attr))}
			for _, a := range tok.Attr {
				n.Attrs[qname(a.Name)] = a.Value
			}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.Children = append(parent.Children, n)
			} else if root != nil {
				return nil, fmt.Errorf("malformed XML: second root element <%s>", n.Name)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			if len(n.Children) > 0 && strings.TrimSpace(n.Text) == "" {
				n.Text = ""
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(tok)
			} else if len(bytes.TrimSpace(tok)) > 0 {
				return nil, errors.New("malformed XML: text outside the root element")
			}
		}
	}
	if root == nil {
		return nil, errors.New("malformed XML: no root element")
	}
	return root, nil
}

func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// Find returns the first element named name below n, depth-first, or nil. Like every method
// of Node it accepts a nil n, so that a chain of lookups fails on its assertion, not a panic.
func (n *Node) Find(name string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
		if f := c.Find(name); f != nil {
			return f
		}
	}
	return nil
}

// FindAll returns every element named name below n, depth-first, in document order.
func (n *Node) FindAll(name string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Name == name {
			out = append(out, c)
		}
		out = append(out, c.FindAll(name)...)
	}
	return out
}

// ChildNames returns the names of n's children in order, e.g. the verbs of a <Response>.
func (n *Node) ChildNames() []string {
	if n == nil {
		return nil
	}
	names := make([]string, len(n.Children))
	for i, c := range n.Children {
		names[i] = c.Name
	}
	return names
}

// Child returns n's i-th child, or nil when there is none.
func (n *Node) Child(i int) *Node {
	if n == nil || i < 0 || i >= len(n.Children) {
		return nil
	}
	return n.Children[i]
}

// Attr returns the value of attribute name, "" when it is absent.
func (n *Node) Attr(name string) string {
	if n == nil {
		return ""
	}
	return n.Attrs[name]
}

// HasAttr reports whether n carries attribute name, even empty.
func (n *Node) HasAttr(name string) bool {
	if n == nil {
		return false
	}
	_, ok := n.Attrs[name]
	return ok
}

// String returns n and its subtree in Canonical form, for failure messages.
func (n *Node) String() string {
	if n == nil {
		return "<nil>"
	}
	var b bytes.Buffer
	n.write(&b, 0)
	return b.String()
}

// Canonical re-serialises doc with attributes sorted by name and one element per line,
// indented by depth, keeping the XML declaration if doc has one: a stable form for golden
// files. A document that does not parse comes back unchanged after a comment saying why, so
// that a golden comparison shows the error.
func Canonical(doc []byte) []byte {
	root, err := parse(doc)
	if err != nil {
		return append([]byte(fmt.Sprintf("<!-- twimltest.Canonical: %s -->\n", strings.ReplaceAll(err.Error(), "--", "- -"))), doc...)
	}
	var b bytes.Buffer
	if bytes.HasPrefix(bytes.TrimSpace(doc), []byte("<?xml ")) {
		b.WriteString(Declaration)
		b.WriteByte('\n')
	}
	root.write(&b, 0)
	return b.Bytes()
}

func (n *Node) write(b *bytes.Buffer, depth int) {
	indent := strings.Repeat("  ", depth)
	b.WriteString(indent)
	b.WriteByte('<')
	b.WriteString(n.Name)
	keys := make([]string, 0, len(n.Attrs))
	for k := range n.Attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteString(`="`)
		xml.EscapeText(b, []byte(n.Attrs[k])) // escapes quotes and newlines too
		b.WriteByte('"')
	}
	switch {
	case len(n.Children) == 0 && n.Text == "":
		b.WriteString("/>\n")
	case len(n.Children) == 0:
		b.WriteByte('>')
		xml.EscapeText(b, []byte(n.Text))
		b.WriteString("</" + n.Name + ">\n")
	default:
		b.WriteString(">\n")
		if t := strings.TrimSpace(n.Text); t != "" {
			b.WriteString(indent + "  ")
			xml.EscapeText(b, []byte(t))
			b.WriteByte('\n')
		}
		for _, c := range n.Children {
			c.write(b, depth+1)
		}
		b.WriteString(indent + "</" + n.Name + ">\n")
	}
}

// Gap is a known gap of Twilio's 2018 XSD: TwiML Twilio accepts that the schema rejects. A
// test tolerates a gap only by naming it to Validate or Check.
type Gap string

// The gaps listed in third_party/twilio/README.md.
const (
	// GapSayVoice tolerates a <Say voice> outside the schema's pattern
	// (man|woman|male|female|eve|brian|Polly\.[a-zA-Z]+): alice, Polly.Joanna-Neural,
	// Google.en-US-Standard-C. Polly.Joanna itself validates.
	GapSayVoice Gap = "Say@voice"
	// GapLeave tolerates <Leave/> as a verb of <Response>.
	GapLeave Gap = "Leave"
	// GapConnect tolerates <Connect> as a verb of <Response>; its children must be covered
	// by gaps too (GapStream), since the schema has no model to check them against.
	GapConnect Gap = "Connect"
	// GapStream tolerates <Stream> inside <Connect> (inside <Start> the schema allows it).
	GapStream Gap = "Stream"
	// GapConferenceParticipantLabel tolerates <Conference participantLabel>.
	GapConferenceParticipantLabel Gap = "Conference@participantLabel"
	// GapEnqueueMaxQueueSize tolerates <Enqueue maxQueueSize>.
	GapEnqueueMaxQueueSize Gap = "Enqueue@maxQueueSize"
	// GapNumberMachineDetection tolerates <Number machineDetection amdStatusCallback>
	// (answering-machine detection on a dialed number, documented on Twilio's <Number> page).
	GapNumberMachineDetection Gap = "Number@machineDetection"
)

// gapLines are the xmllint error lines an attribute gap tolerates, and nothing else.
var gapLines = map[Gap]*regexp.Regexp{
	GapSayVoice:                   regexp.MustCompile(`^-:\d+: element Say: Schemas validity error : Element 'Say', attribute 'voice': \[facet 'pattern'\] The value '[^']*' is not accepted by the pattern '[^']*'\.$`),
	GapConferenceParticipantLabel: regexp.MustCompile(`^-:\d+: element Conference: Schemas validity error : Element 'Conference', attribute 'participantLabel': The attribute 'participantLabel' is not allowed\.$`),
	GapEnqueueMaxQueueSize:        regexp.MustCompile(`^-:\d+: element Enqueue: Schemas validity error : Element 'Enqueue', attribute 'maxQueueSize': The attribute 'maxQueueSize' is not allowed\.$`),
	GapNumberMachineDetection:     regexp.MustCompile(`^-:\d+: element Number: Schemas validity error : Element 'Number', attribute '(machineDetection|amdStatusCallback)': The attribute '(machineDetection|amdStatusCallback)' is not allowed\.$`),
}

// ErrNoValidator is returned by Check when xmllint or the XSD cannot be found.
var ErrNoValidator = errors.New("twimltest: cannot validate TwiML")

// XSDName is the schema file Check validates against.
const XSDName = twiliospec.XSDMain

// validator locates the XSD and xmllint. It looks on every call (a few stats, nothing next
// to running xmllint) so that a test may change $TWIML_XSD or $PATH.
func validator() (xsd, xmllint string, err error) {
	var missing []string
	xsd, err = findXSD()
	if err != nil {
		missing = append(missing, err.Error())
	}
	xmllint, err = exec.LookPath("xmllint")
	if err != nil {
		missing = append(missing, "xmllint not found in PATH (apt-get install -y libxml2-utils)")
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("%w: %s", ErrNoValidator, strings.Join(missing, "; "))
	}
	return xsd, xmllint, nil
}

// findXSD returns $TWIML_XSD if set, else the schema vendored in third_party/twilio, written
// to disk for xmllint.
func findXSD() (string, error) {
	if p := os.Getenv("TWIML_XSD"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("TWIML_XSD: %v", err)
		}
		return filepath.Abs(p)
	}
	vendored.once.Do(func() { vendored.path, vendored.err = writeXSD(os.TempDir()) })
	return vendored.path, vendored.err
}

var vendored struct {
	once sync.Once
	path string
	err  error
}

// writeXSD writes the vendored schema set (its files include each other by relative path, so
// xmllint needs them side by side on disk) into a directory under tmp and returns the path of
// XSDName there. The directory is named after the set's content and the user: test binaries
// share one per schema version instead of each leaving a copy behind. It is renamed into place
// complete, and an existing one is used only if its files match; otherwise a private copy is
// written.
func writeXSD(tmp string) (string, error) {
	files := map[string][]byte{}
	names, err := fs.Glob(twiliospec.XSD, "*")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, name := range names { // sorted
		b, err := fs.ReadFile(twiliospec.XSD, name)
		if err != nil {
			return "", err
		}
		files[name] = b
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	named := filepath.Join(tmp, fmt.Sprintf("callrelay-twiml-xsd-%d-%x", os.Getuid(), h.Sum(nil)[:8]))
	if sameFiles(named, files) {
		return filepath.Join(named, XSDName), nil
	}
	dir, err := os.MkdirTemp(tmp, "callrelay-twiml-xsd-")
	if err != nil {
		return "", fmt.Errorf("writing the TwiML XSD: %w", err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o444); err != nil {
			return "", fmt.Errorf("writing the TwiML XSD: %w", err)
		}
	}
	if err := os.Rename(dir, named); err == nil || sameFiles(named, files) {
		os.RemoveAll(dir) // a no-op after the rename; else another process won the race
		return filepath.Join(named, XSDName), nil
	}
	return filepath.Join(dir, XSDName), nil // named is unusable (not ours, damaged): keep the private copy
}

// sameFiles reports whether dir holds exactly files.
func sameFiles(dir string, files map[string][]byte) bool {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != len(files) {
		return false
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			return false
		}
	}
	return true
}

// Validate checks doc against Twilio's XSD (see Check) and fails the test when it does not
// validate. Without xmllint or the XSD it only logs, unless $CI is "true": there it fails,
// so that CI never passes without having validated anything.
func Validate(t testing.TB, doc []byte, gaps ...Gap) {
	t.Helper()
	err := Check(doc, gaps...)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoValidator) && os.Getenv("CI") != "true":
		t.Logf("TwiML NOT validated: %v", err)
	case errors.Is(err, ErrNoValidator):
		t.Fatalf("CI=true but TwiML cannot be validated: %v", err)
	default:
		t.Errorf("TwiML does not validate against Twilio's XSD: %v\n%s", err, doc)
	}
}

// Check validates doc against Twilio's XSD with xmllint. It tolerates exactly the gaps given,
// and refuses a gap the document does not need, so that a stale exception does not linger.
//
// Attribute gaps filter xmllint's error lines. Element gaps (Leave, Connect, Stream) remove
// those elements before validation instead: after an unexpected element xmllint stops
// checking the rest of its parent, so filtering its line would hide later errors.
func Check(doc []byte, gaps ...Gap) error {
	xsd, xmllint, err := validator()
	if err != nil {
		return err
	}
	want := make(map[Gap]bool, len(gaps))
	for _, g := range gaps {
		if _, ok := gapLines[g]; !ok && g != GapLeave && g != GapConnect && g != GapStream {
			return fmt.Errorf("twimltest: unknown gap %q", g)
		}
		want[g] = true
	}
	used := make(map[Gap]bool)
	if want[GapLeave] || want[GapConnect] || want[GapStream] {
		if doc, err = stripGaps(doc, want, used); err != nil {
			return err
		}
	}

	cmd := exec.Command(xmllint, "--noout", "--schema", xsd, "-")
	cmd.Stdin = bytes.NewReader(doc)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return fmt.Errorf("twimltest: running xmllint: %w", runErr)
	}

	// xmllint exits 3 when the document is well-formed but invalid; anything else but 0 (1 is a
	// parse error, 4 a schema it could not load) is never a gap.
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" || line == "- validates" || line == "- fails to validate" {
			continue
		}
		tolerated := false
		for g, re := range gapLines {
			if want[g] && re.MatchString(line) {
				used[g], tolerated = true, true
				break
			}
		}
		if !tolerated {
			bad = append(bad, line)
		}
	}
	switch {
	case len(bad) > 0:
		return fmt.Errorf("xmllint: %s", strings.Join(bad, "\n"))
	case runErr != nil && exit.ExitCode() != 3:
		return fmt.Errorf("xmllint exited %d: %s", exit.ExitCode(), out.String())
	}
	for _, g := range gaps {
		if !used[g] {
			return fmt.Errorf("twimltest: gap %q named but the document does not need it", g)
		}
	}
	return nil
}

// stripGaps returns doc without the elements of the element gaps in want, recording in used
// the gaps it applied. A <Connect> child not covered by a gap is an error.
func stripGaps(doc []byte, want, used map[Gap]bool) ([]byte, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	var path []string // names of the open elements kept or skipped
	skip := 0         // depth inside a removed element, 0 when not in one
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			parent := ""
			if len(path) > 0 {
				parent = path[len(path)-1]
			}
			path = append(path, t.Name.Local)
			if skip > 0 {
				if parent == "Connect" {
					if t.Name.Local != "Stream" || !want[GapStream] {
						return nil, fmt.Errorf("twimltest: <%s> inside <Connect> is not covered by a gap", t.Name.Local)
					}
					used[GapStream] = true
				}
				skip++
				continue
			}
			switch {
			case parent == "Response" && t.Name.Local == "Leave" && want[GapLeave]:
				used[GapLeave] = true
				skip = 1
				continue
			case parent == "Response" && t.Name.Local == "Connect" && want[GapConnect]:
				used[GapConnect] = true
				skip = 1
				continue
			case parent == "Connect" && t.Name.Local == "Stream" && want[GapStream]:
				used[GapStream] = true
				skip = 1
				continue
			}
		case xml.EndElement:
			path = path[:len(path)-1]
			if skip > 0 {
				skip--
				continue
			}
		default:
			if skip > 0 {
				continue
			}
		}
		if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
			return nil, fmt.Errorf("twimltest: re-encoding: %w", err)
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
