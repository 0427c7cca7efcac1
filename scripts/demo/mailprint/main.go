// Command mailprint prints an email as a person reads it, for `make demo`: the main headers,
// the text/plain part decoded (quoted-printable breaks long lines such as the audio link, and
// writes = as =3D), and one line per attachment instead of its base64.
//
//	mailprint file.eml...
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mailprint file.eml...")
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for _, p := range os.Args[1:] {
		if err := printFile(w, p); err != nil {
			w.Flush()
			fmt.Fprintln(os.Stderr, "mailprint:", err)
			os.Exit(1)
		}
	}
}

func printFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := printMessage(w, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Headers shown, in this order; the MIME plumbing is left out.
var shown = []string{"Date", "From", "To", "Subject", "Message-ID", "X-Callrelay-Call", "X-Callrelay-Voicemail"}

// maxSize bounds what is read of one message (the demo's has a few kB of audio).
const maxSize = 32 << 20

// printMessage writes the message read from r.
func printMessage(w io.Writer, r io.Reader) error {
	msg, err := mail.ReadMessage(io.LimitReader(r, maxSize))
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	dec := new(mime.WordDecoder)
	for _, name := range shown {
		v := msg.Header.Get(name)
		if v == "" {
			continue
		}
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
		fmt.Fprintf(w, "%s: %s\n", name, v)
	}
	fmt.Fprintln(w)
	return printPart(w, msg.Header, msg.Body)
}

// printPart prints a text/plain body, walks into multiparts and names anything else.
// multipart.Reader.NextPart decodes quoted-printable itself.
func printPart(w io.Writer, h map[string][]string, body io.Reader) error {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	ctype := get("Content-Type")
	if ctype == "" {
		ctype = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return fmt.Errorf("content type %q: %w", ctype, err)
	}
	disp, dparams, _ := mime.ParseMediaType(get("Content-Disposition"))
	switch {
	case strings.HasPrefix(mediaType, "multipart/"):
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return fmt.Errorf("%s: %w", mediaType, err)
			}
			if err := printPart(w, p.Header, p); err != nil {
				return err
			}
			// multipart/alternative: the text is enough, the HTML says the same.
			if mediaType == "multipart/alternative" && isText(p.Header) {
				return nil
			}
		}
	case mediaType == "text/plain" && disp != "attachment":
		if strings.EqualFold(get("Content-Transfer-Encoding"), "base64") {
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		text, err := io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("text part: %w", err)
		}
		text = bytes.ReplaceAll(text, []byte("\r\n"), []byte("\n"))
		if _, err := w.Write(text); err != nil {
			return err
		}
		if !bytes.HasSuffix(text, []byte("\n")) {
			fmt.Fprintln(w)
		}
		return nil
	default:
		// An attachment: named, with its decoded size.
		n, err := io.Copy(io.Discard, decoded(get("Content-Transfer-Encoding"), body))
		if err != nil {
			return fmt.Errorf("attachment: %w", err)
		}
		name := dparams["filename"]
		if name == "" {
			name = params["name"]
		}
		fmt.Fprintf(w, "[attachment: %s, %s, %d bytes]\n", or(name, "(no name)"), mediaType, n)
		return nil
	}
}

func isText(h map[string][]string) bool {
	v := ""
	if c := h["Content-Type"]; len(c) > 0 {
		v = c[0]
	}
	mt, _, _ := mime.ParseMediaType(v)
	return mt == "text/plain" || v == ""
}

func decoded(cte string, r io.Reader) io.Reader {
	if strings.EqualFold(cte, "base64") {
		return base64.NewDecoder(base64.StdEncoding, r)
	}
	return r
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
