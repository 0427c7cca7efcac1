package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/signature"
)

// The three hottest webhooks through the whole handler (request ID and metrics middleware,
// body limit, signature check, form parse, store on a real PostgreSQL, TwiML), as Twilio sends
// them for a call to a number forwarding to one phone. Each op signs its request first (about
// 2 µs of the op). Skipped without PostgreSQL (TEST_DATABASE_URL, else 127.0.0.1:5432).
// Each reports its round trips to PostgreSQL and statements per op (roundtrips/op, stmts/op).

// newBenchServer is a test server whose pool counts what it sends; the counter starts at zero.
func newBenchServer(b *testing.B) (*testServer, *pgtest.Counter) {
	pool, counter := pgtest.NewCountingPool(b)
	return newTestServer(b, withPool(pool)), counter
}

const benchRouting = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`

// benchCallSid is the n-th CallSid of a benchmark (kind tells benchmarks and legs apart).
func benchCallSid(kind byte, n int64) string { return fmt.Sprintf("CA%02x%030x", kind, n) }

// benchPost serves one signed webhook and returns the recorder; safe from many goroutines.
func benchPost(h http.Handler, pathAndQuery string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, pathAndQuery, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, publicURL+pathAndQuery, form))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// benchVoiceForm is an incoming call as Twilio posts it (with the caller's CallToken).
func benchVoiceForm(sid string) url.Values {
	return url.Values{
		"AccountSid": {accountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {sid}, "CallStatus": {"ringing"},
		"Direction": {"inbound"}, "From": {caller}, "To": {masked}, "Caller": {caller}, "Called": {masked},
		"CallerCountry": {"US"}, "CalledCountry": {"US"}, "FromCountry": {"US"}, "ToCountry": {"US"},
		"CallToken": {`{"parentCallInfoToken":"` + strings.Repeat("eyJhbGciOiJFUzI1NiJ9", 24) + `"}`},
	}
}

// benchScheduledRouting is benchRouting with business hours (open every hour, so that every
// call rings; the evaluation is the same work open or closed), a year of holidays on other
// days, and a caller block list: what the voice webhook decides for a scheduled number.
var benchScheduledRouting = func() string {
	var days, holidays []string
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		days = append(days, fmt.Sprintf(`%q: ["00:00-12:00", "12:00-24:00"]`, d))
	}
	for i := range 12 {
		holidays = append(holidays, fmt.Sprintf(`{"date": %q, "hours": ["00:00-24:00"]}`, t0.AddDate(0, i, 1).Format(time.DateOnly)))
	}
	return `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}],"time_zone":"America/New_York",
		"schedule":{"weekly":{` + strings.Join(days, ",") + `},"exceptions":[` + strings.Join(holidays, ",") + `]},
		"after_hours":{"greeting":"Closed."},"callers":{"block":["+1900","+1976","+15550009999"],"withheld":"voicemail"}}`
}()

// BenchmarkVoiceWebhook is POST /twilio/voice for a new call: one at a time (serial), and from
// 32 goroutines at once (parallel), like the load test's 32 connections; "scheduled" is the
// same for a number with business hours and caller policies.
func BenchmarkVoiceWebhook(b *testing.B) {
	b.Run("scheduled", func(b *testing.B) {
		benchVoice(b, benchScheduledRouting)
	})
	benchVoice(b, benchRouting)
}

func benchVoice(b *testing.B, routing string) {
	b.Run("serial", func(b *testing.B) {
		s, counter := newBenchServer(b)
		s.putNumber(masked, routing)
		var n int64
		counter.Reset()
		b.ReportAllocs()
		for b.Loop() {
			n++
			rec := benchPost(s.handler, "/twilio/voice", benchVoiceForm(benchCallSid(1, n)))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<Dial") {
				b.Fatalf("voice: %d %s", rec.Code, rec.Body)
			}
		}
		counter.Report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		s, counter := newBenchServer(b)
		s.putNumber(masked, routing)
		var n atomic.Int64
		b.SetParallelism(16)
		// Open the pool's connections before the timer starts.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() { benchPost(s.handler, "/twilio/voice", benchVoiceForm(benchCallSid(5, int64(i)))) })
		}
		wg.Wait()
		counter.Reset()
		defer counter.Report(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rec := benchPost(s.handler, "/twilio/voice", benchVoiceForm(benchCallSid(2, n.Add(1))))
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<Dial") {
					b.Errorf("voice: %d %s", rec.Code, rec.Body)
					return
				}
			}
		})
	})
}

// benchCallSupply hands out calls that exist, started through the store in batches outside
// the timer.
type benchCallSupply struct {
	s       *testServer
	counter *pgtest.Counter // paused while the calls are made
	kind    byte
	answer  bool // each call's forwarded leg has answered (it has a callee)
	sids    []string
	next    int64
}

func (c *benchCallSupply) take(b *testing.B) string {
	if len(c.sids) == 0 {
		b.StopTimer()
		c.counter.Pause()
		defer c.counter.Resume()
		for range 500 {
			c.next++
			sid := benchCallSid(c.kind, c.next)
			if _, err := c.s.db.StartCall(context.Background(), callrelay.InboundCall{CallSid: sid, Number: masked, From: caller}); err != nil {
				b.Fatal(err)
			}
			if c.answer {
				if _, err := c.s.db.RecordLegProgress(context.Background(), callrelay.LegProgress{CallSid: "CAff" + sid[4:],
					ParentCallSid: sid, Status: callrelay.StatusInProgress, Sequence: 2, At: t0, Target: "+15550001111"}); err != nil {
					b.Fatal(err)
				}
			}
			c.sids = append(c.sids, sid)
		}
		b.StartTimer()
	}
	sid := c.sids[0]
	c.sids = c.sids[1:]
	return sid
}

// BenchmarkCallStatusWebhook is POST /twilio/call-status?target=0: each op one status
// callback of the forwarded leg of a call, which is answered and hung up (initiated, ringing,
// in-progress, completed).
func BenchmarkCallStatusWebhook(b *testing.B) {
	s, counter := newBenchServer(b)
	s.putNumber(masked, benchRouting)
	calls := &benchCallSupply{s: s, counter: counter, kind: 3}
	counter.Reset()
	statuses := []string{"initiated", "ringing", "in-progress", "completed"}
	var parent, leg string
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		k := i % len(statuses)
		if k == 0 {
			parent = calls.take(b)
			leg = "CAff" + parent[4:]
		}
		form := url.Values{
			"AccountSid": {accountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {leg}, "ParentCallSid": {parent},
			"CallStatus": {statuses[k]}, "Direction": {"outbound-dial"}, "From": {caller}, "To": {"+15550001111"},
			"Caller": {caller}, "Called": {"+15550001111"}, "CallbackSource": {"call-progress-events"},
			"SequenceNumber": {fmt.Sprint(k)}, "Timestamp": {t0.Add(time.Duration(k) * time.Second).Format(time.RFC1123Z)},
		}
		if k == 3 {
			form.Set("CallDuration", "42")
			form.Set("Duration", "1")
		}
		if rec := benchPost(s.handler, "/twilio/call-status?target=0", form); rec.Code != http.StatusNoContent {
			b.Fatalf("call-status %s: %d %s", statuses[k], rec.Code, rec.Body)
		}
		i++
	}
	counter.Report(b)
}

// BenchmarkDialOutcomeWebhook is POST /twilio/dial-outcome?attempt=0 of a call nobody
// answered: the caller is sent to voicemail.
func BenchmarkDialOutcomeWebhook(b *testing.B) {
	s, counter := newBenchServer(b)
	s.putNumber(masked, benchRouting)
	calls := &benchCallSupply{s: s, counter: counter, kind: 4}
	counter.Reset()
	b.ReportAllocs()
	for b.Loop() {
		sid := calls.take(b)
		form := url.Values{
			"AccountSid": {accountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {sid}, "CallStatus": {"in-progress"},
			"Direction": {"inbound"}, "From": {caller}, "To": {masked}, "Caller": {caller}, "Called": {masked},
			"DialCallStatus": {"no-answer"}, "DialCallSid": {"CAff" + sid[4:]},
		}
		rec := benchPost(s.handler, "/twilio/dial-outcome?attempt=0", form)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<Record") {
			b.Fatalf("dial-outcome: %d %s", rec.Code, rec.Body)
		}
	}
	counter.Report(b)
}

// BenchmarkCallerStatusWebhook is POST /twilio/call-status for the caller's own call (no
// ParentCallSid): its completed status, which ends the call. "answered": the call's leg
// answered, and the call's outcome is decided in the same transaction; "missed": nobody
// answered, and a check of the call is queued (a River job) in it.
func BenchmarkCallerStatusWebhook(b *testing.B) {
	for _, answered := range []bool{true, false} {
		name := map[bool]string{true: "answered", false: "missed"}[answered]
		b.Run(name, func(b *testing.B) {
			s, counter := newBenchServer(b)
			s.putNumber(masked, benchRouting)
			calls := &benchCallSupply{s: s, counter: counter, kind: 8, answer: answered}
			counter.Reset()
			b.ReportAllocs()
			for b.Loop() {
				sid := calls.take(b)
				form := url.Values{
					"AccountSid": {accountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {sid}, "CallStatus": {"completed"},
					"Direction": {"inbound"}, "From": {caller}, "To": {masked}, "Caller": {caller}, "Called": {masked},
					"CallDuration": {"42"}, "Timestamp": {t0.Format(time.RFC1123Z)},
				}
				if rec := benchPost(s.handler, "/twilio/call-status", form); rec.Code != http.StatusNoContent {
					b.Fatalf("caller's call-status: %d %s", rec.Code, rec.Body)
				}
			}
			counter.Report(b)
		})
	}
}

// BenchmarkCallbacksParallel are the two callbacks from 32 goroutines at once (SetParallelism
// 16 on 2 CPUs), as under the
// load test's 32 connections: each op is one callback of a call of its own (call-status: a
// leg's initiated, ringing, in-progress or completed, in turn; dial-outcome: nobody answered),
// the calls made before the timer starts. Run it with -benchtime Nx: the calls are made for N.
func BenchmarkCallbacksParallel(b *testing.B) {
	statuses := []string{"initiated", "ringing", "in-progress", "completed"}
	setup := func(b *testing.B, kind byte) (*testServer, *pgtest.Counter, []string) {
		s, counter := newBenchServer(b)
		s.putNumber(masked, benchRouting)
		sids := make([]string, b.N)
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 8 {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
					sids[i] = benchCallSid(kind, i)
					if _, err := s.db.StartCall(context.Background(), callrelay.InboundCall{CallSid: sids[i], Number: masked, From: caller}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		counter.Reset()
		b.SetParallelism(16)
		b.ReportAllocs()
		b.ResetTimer()
		return s, counter, sids
	}
	b.Run("call-status", func(b *testing.B) {
		s, counter, sids := setup(b, 6)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1) - 1
				k := int(i % int64(len(statuses)))
				parent := sids[i]
				form := url.Values{
					"AccountSid": {accountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {"CAff" + parent[4:]}, "ParentCallSid": {parent},
					"CallStatus": {statuses[k]}, "Direction": {"outbound-dial"}, "From": {caller}, "To": {"+15550001111"},
					"Caller": {caller}, "Called": {"+15550001111"}, "CallbackSource": {"call-progress-events"},
					"SequenceNumber": {fmt.Sprint(k)}, "Timestamp": {t0.Format(time.RFC1123Z)},
				}
				if rec := benchPost(s.handler, "/twilio/call-status?target=0", form); rec.Code != http.StatusNoContent {
					b.Errorf("call-status %s: %d %s", statuses[k], rec.Code, rec.Body)
					return
				}
			}
		})
		counter.Report(b)
	})
	b.Run("dial-outcome", func(b *testing.B) {
		s, counter, sids := setup(b, 7)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sid := sids[n.Add(1)-1]
				form := url.Values{
					"AccountSid": {accountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {sid}, "CallStatus": {"in-progress"},
					"Direction": {"inbound"}, "From": {caller}, "To": {masked}, "Caller": {caller}, "Called": {masked},
					"DialCallStatus": {"no-answer"}, "DialCallSid": {"CAff" + sid[4:]},
				}
				rec := benchPost(s.handler, "/twilio/dial-outcome?attempt=0", form)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<Record") {
					b.Errorf("dial-outcome: %d %s", rec.Code, rec.Body)
					return
				}
			}
		})
		counter.Report(b)
	})
}
