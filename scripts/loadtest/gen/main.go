// Command gen writes signed Twilio webhooks for wrk (scripts/loadtest/webhooks.lua), one per
// line, "signature<TAB>form body", all for one route whose URL it prints with -print-url.
//
//	gen -route /twilio/voice -n N [-prefix HEX]       N incoming calls with new CallSids
//	gen -route /twilio/call-status -calls FILE        the forwarded leg's status callbacks
//	gen -route /twilio/dial-outcome -calls FILE       the caller's Dial action, one per call
//
// FILE lists the CallSids of calls callrelay has (one a line, e.g. from its calls table), so
// the callbacks hit real calls. Each call's outcome (answered, no-answer, busy) follows from its
// CallSid (package webhook), so the two callback files agree. Status callbacks are written in
// waves of -wave calls: every call's first callback, then every call's second, and so on, so a
// leg's callbacks arrive in order and far apart, as Twilio sends them seconds apart.
//
// Common flags: -url (the public URL callrelay signs against, no trailing slash), -token (its
// TWILIO_AUTH_TOKEN), -number, -from, -target (the masked number, the caller, the forwarded
// phone).
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/callrelay/callrelay/scripts/loadtest/webhook"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	route := fs.String("route", "", "route: /twilio/voice, /twilio/call-status or /twilio/dial-outcome")
	base := fs.String("url", "http://127.0.0.1:18080", "callrelay's public URL (CALLRELAY_PUBLIC_URL)")
	token := fs.String("token", "", "callrelay's TWILIO_AUTH_TOKEN")
	callsFile := fs.String("calls", "", "file of CallSids, one a line (callbacks)")
	n := fs.Int("n", 0, "number of incoming calls (voice)")
	prefix := fs.String("prefix", "", "hex CallSid prefix, up to 16 digits (voice; default random)")
	number := fs.String("number", "+15551230000", "the masked number (To)")
	from := fs.String("from", "+15559870000", "the caller (From)")
	target := fs.String("target", "+15550001111", "the phone the number forwards to")
	wave := fs.Int("wave", 500, "calls per wave of status callbacks")
	printURL := fs.Bool("print-url", false, "print the URL the requests are signed for, and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pq, err := webhook.PathAndQuery(*route)
	if err != nil {
		return err
	}
	*base = strings.TrimRight(*base, "/")
	if *printURL {
		_, err := fmt.Fprintln(stdout, *base+pq)
		return err
	}
	if *token == "" {
		return fmt.Errorf("-token is required")
	}
	w := bufio.NewWriterSize(stdout, 1<<20)
	emit := func(s webhook.Signed) error {
		_, err := fmt.Fprintf(w, "%s\t%s\n", s.Signature, s.Body)
		return err
	}
	call := func(sid string) webhook.Call {
		return webhook.Call{Sid: sid, Number: *number, From: *from, Target: *target}
	}

	switch *route {
	case webhook.RouteVoice:
		if *n <= 0 {
			return fmt.Errorf("-n: want a positive number of calls")
		}
		if *prefix == "" {
			*prefix = randomHex(8)
		}
		if len(*prefix) > 16 || strings.Trim(*prefix, "0123456789abcdef") != "" {
			return fmt.Errorf("-prefix %q: want up to 16 lowercase hex digits", *prefix)
		}
		for i := range *n {
			sid := fmt.Sprintf("CA%s%0*x", *prefix, 32-len(*prefix), i)
			if err := emit(webhook.Sign(*token, *base, pq, call(sid).Voice())); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	case webhook.RouteCallStatus, webhook.RouteDialOutcome:
		sids, err := readCalls(*callsFile)
		if err != nil {
			return err
		}
		now := time.Now()
		if *route == webhook.RouteDialOutcome {
			for _, sid := range sids {
				o, hungUp := webhook.OutcomeOf(sid)
				if err := emit(webhook.Sign(*token, *base, pq, call(sid).DialOutcome(o, hungUp))); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
			break
		}
		if *wave < 1 {
			return fmt.Errorf("-wave: want at least 1")
		}
		for start := 0; start < len(sids); start += *wave {
			batch := sids[start:min(start+*wave, len(sids))]
			for seq := 0; ; seq++ {
				wrote := false
				for _, sid := range batch {
					o, _ := webhook.OutcomeOf(sid)
					steps := webhook.LegSteps(o)
					if seq >= len(steps) {
						continue
					}
					if err := emit(webhook.Sign(*token, *base, pq, call(sid).LegStatus(seq, steps[seq], now.Add(steps[seq].After)))); err != nil {
						return fmt.Errorf("write: %w", err)
					}
					wrote = true
				}
				if !wrote {
					break
				}
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// readCalls reads CallSids, one a line; blank lines are skipped.
func readCalls(path string) ([]string, error) {
	if path == "" {
		return nil, fmt.Errorf("-calls is required for callbacks")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read calls: %w", err)
	}
	var sids []string
	for line := range strings.Lines(string(data)) {
		sid := strings.TrimSpace(line)
		if sid == "" {
			continue
		}
		if len(sid) != 34 || !strings.HasPrefix(sid, "CA") {
			return nil, fmt.Errorf("read calls: %s: %q is not a CallSid", path, sid)
		}
		sids = append(sids, sid)
	}
	if len(sids) == 0 {
		return nil, fmt.Errorf("read calls: %s has no CallSids", path)
	}
	return sids, nil
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
