package mailtest

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"testing"
)

// Email is a delivered message taken apart.
type Email struct {
	Header      netmail.Header
	Text, HTML  string
	Attachments map[string][]byte // by file name
	ContentType map[string]string // of each attachment
}

// Parse takes a raw RFC 5322 message apart: headers, the text and HTML parts, the attachments
// decoded. It fails the test on malformed MIME.
func Parse(t testing.TB, raw []byte) Email {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("mailtest: parse email: %v", err)
	}
	e := Email{Header: msg.Header, Attachments: map[string][]byte{}, ContentType: map[string]string{}}
	var walk func(ct string, body io.Reader, encoding, disposition string)
	walk = func(ct string, body io.Reader, encoding, disposition string) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("mailtest: content type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				} else if err != nil {
					t.Fatalf("mailtest: multipart: %v", err)
				}
				// multipart.Part decodes quoted-printable itself and drops that header.
				walk(p.Header.Get("Content-Type"), p, p.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Disposition"))
			}
		}
		if strings.EqualFold(encoding, "base64") {
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		data, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("mailtest: part %s: %v", mt, err)
		}
		if _, dp, err := mime.ParseMediaType(disposition); err == nil && strings.HasPrefix(disposition, "attachment") {
			e.Attachments[dp["filename"]] = data
			e.ContentType[dp["filename"]] = mt
			return
		}
		switch mt {
		case "text/plain":
			e.Text = string(data)
		case "text/html":
			e.HTML = string(data)
		}
	}
	walk(msg.Header.Get("Content-Type"), msg.Body, msg.Header.Get("Content-Transfer-Encoding"), "")
	return e
}
