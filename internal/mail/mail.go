// Package mail delivers one email message, over SMTP or into a drop folder.
//
// The message is always rendered by [Render], on go-mail's Msg: the SMTP
// sender transmits exactly the bytes that the Dir sender writes to disk.
// A rendered message is multipart/mixed (when it has attachments) around a
// multipart/alternative of text/plain and text/html (UTF-8,
// quoted-printable); attachments are base64 with Content-Disposition
// attachment and a filename.
//
// Rendering is deterministic: the same Message (with Date and MessageID set)
// gives the same bytes, MIME boundaries included. A retried voicemail keeps its
// Message-ID (and so its drop-folder file name), though its audio link, signed
// anew, differs.
package mail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Attachment is one file attached to a Message.
type Attachment struct {
	Filename    string // shown to the recipient; path separators and quotes are replaced
	ContentType string // e.g. "audio/mpeg"; empty: guessed from the extension, else application/octet-stream
	Data        []byte
}

// Message is one email.
type Message struct {
	From, To string // RFC 5322 addresses, "Name <a@b>" or "a@b"; To is one recipient
	Subject  string // UTF-8; encoded-word when it is not plain ASCII
	// Text and HTML are both sent, as multipart/alternative; either may be
	// empty (then the message has only the other one).
	Text, HTML string
	// Date, required, is rendered with its zone (RFC 1123 with numeric offset).
	Date time.Time
	// MessageID, e.g. "<voicemail-42@callrelay>" (angle brackets optional),
	// must be stable across retries of the same email: it names the dropped
	// file and lets a receiver recognise a duplicate. Empty: a random one
	// (and Dir names the file after the time).
	MessageID string
	// Headers are extra header fields (e.g. X-Callrelay-Voicemail). They may
	// not replace the headers this package writes (From, To, Subject, Date,
	// Message-ID, MIME-Version, Content-*…).
	Headers     map[string]string
	Attachments []Attachment
}

// Sender delivers one message.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrInvalidMessage wraps every error about a Message that cannot be rendered
// (bad address, bad header, bad Message-ID…). [IsPermanent] reports it as
// permanent: sending the same Message again cannot succeed.
var ErrInvalidMessage = errors.New("mail: invalid message")

// New returns the Sender that the configuration asks for: with smtpURL empty,
// a [Dir] sender writing into dir (CALLRELAY_MAIL_DIR); otherwise an [SMTP]
// sender on smtpURL (SMTP_URL) whose sends are each bounded by timeout.
func New(smtpURL, dir string, timeout time.Duration) (Sender, error) {
	if strings.TrimSpace(smtpURL) == "" {
		if strings.TrimSpace(dir) == "" {
			return nil, errors.New("mail: neither an SMTP URL nor a mail directory is configured")
		}
		return NewDir(dir), nil
	}
	return NewSMTP(smtpURL, timeout)
}

// Render returns the complete RFC 5322 / MIME message for m, CRLF line
// endings, as both senders deliver it.
func Render(m Message) ([]byte, error) {
	_, b, err := render(m)
	return b, err
}

// reserved header fields: written by this package, never from Message.Headers.
var reserved = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Sender": true,
	"Subject": true, "Date": true, "Message-Id": true, "Mime-Version": true,
	"Content-Type": true, "Content-Transfer-Encoding": true,
	"Content-Disposition": true, "Content-Id": true, "Content-Description": true,
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...))
}

// render builds the go-mail Msg for m and its bytes (with stable boundaries).
// The Msg carries the envelope (sender and recipients) for SMTP.
func render(m Message) (*gomail.Msg, []byte, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if strings.TrimSpace(m.From) == "" {
		return nil, nil, invalid("no From address")
	}
	if err := msg.From(m.From); err != nil {
		return nil, nil, invalid("From %q: %v", m.From, err)
	}
	if strings.TrimSpace(m.To) == "" {
		return nil, nil, invalid("no To address")
	}
	if err := msg.To(m.To); err != nil {
		return nil, nil, invalid("To %q: %v", m.To, err)
	}
	msg.Subject(m.Subject)

	if m.Date.IsZero() {
		// The caller's clock decides the Date; this package reads none.
		return nil, nil, invalid("no Date")
	}
	msg.SetDateWithValue(m.Date)

	if m.MessageID != "" {
		id, err := cleanMessageID(m.MessageID)
		if err != nil {
			return nil, nil, err
		}
		msg.SetMessageIDWithValue(id)
	}

	for name, value := range m.Headers {
		if err := checkHeader(name, value); err != nil {
			return nil, nil, err
		}
		msg.SetGenHeader(gomail.Header(name), value)
	}

	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	}

	for i, a := range m.Attachments {
		if strings.TrimSpace(a.Filename) == "" {
			return nil, nil, invalid("attachment %d has no filename", i)
		}
		var opts []gomail.FileOption
		if a.ContentType != "" {
			mediaType, params, err := mime.ParseMediaType(a.ContentType)
			if err != nil {
				return nil, nil, invalid("attachment %q: content type %q: %v", a.Filename, a.ContentType, err)
			}
			opts = append(opts, gomail.WithFileContentType(gomail.ContentType(mime.FormatMediaType(mediaType, params))))
		}
		if err := msg.AttachReader(a.Filename, bytes.NewReader(a.Data), opts...); err != nil {
			return nil, nil, invalid("attachment %q: %v", a.Filename, err)
		}
	}

	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return nil, nil, fmt.Errorf("mail: render: %w", err)
	}
	return msg, stableBoundaries(buf.Bytes()), nil
}

// cleanMessageID returns the Message-ID without its angle brackets, checked to
// be a plausible RFC 5322 msg-id (left@right, printable ASCII, no spaces).
func cleanMessageID(raw string) (string, error) {
	id := strings.TrimSpace(raw)
	id = strings.TrimPrefix(id, "<")
	id = strings.TrimSuffix(id, ">")
	at := strings.LastIndexByte(id, '@')
	if at <= 0 || at == len(id)-1 {
		return "", invalid("Message-ID %q is not of the form <left@right>", raw)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' || c == '(' || c == ')' || c == ',' || c == ';' || c == ':' {
			return "", invalid("Message-ID %q has a character not allowed in a msg-id", raw)
		}
	}
	return id, nil
}

// checkHeader validates one extra header field.
func checkHeader(name, value string) error {
	if name == "" {
		return invalid("empty header name")
	}
	for i := 0; i < len(name); i++ {
		// RFC 5322 field-name: printable US-ASCII except colon.
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return invalid("header name %q is not a valid field name", name)
		}
	}
	if reserved[textproto.CanonicalMIMEHeaderKey(name)] {
		return invalid("header %q is written by the mail package and cannot be set in Headers", name)
	}
	if strings.ContainsAny(value, "\r\n") {
		return invalid("header %q: value has a line break", name)
	}
	return nil
}

// go-mail writes every multipart Content-Type as
// "multipart/<kind>;\r\n boundary=<random>".
var boundaryRE = regexp.MustCompile(`multipart/[a-z]+;\r\n boundary=([^\r\n;" ]+)`)

// stableBoundaries replaces go-mail's random multipart boundaries (fresh from
// crypto/rand on every WriteTo) by ones derived from the message content, so
// that Render is a function of the Message. The derived boundary contains a
// hash of the message with the boundaries removed, so no body line can
// contain it (that would need a text holding the hash of itself).
func stableBoundaries(b []byte) []byte {
	matches := boundaryRE.FindAllSubmatch(b, -1)
	if len(matches) == 0 {
		return b
	}
	olds := make([][]byte, 0, len(matches))
	stripped := b
	for _, mt := range matches {
		old := bytes.Clone(mt[1])
		olds = append(olds, old)
		stripped = bytes.ReplaceAll(stripped, old, nil)
	}
	sum := sha256.Sum256(stripped)
	tag := hex.EncodeToString(sum[:16])
	out := b
	for i, old := range olds {
		nb := fmt.Appendf(nil, "callrelay-%d-%s", i, tag)
		if bytes.Contains(b, nb) {
			return b // cannot happen in practice; the random boundaries are valid
		}
		out = bytes.ReplaceAll(out, old, nb)
	}
	return out
}
