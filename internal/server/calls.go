package server

import (
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/hold"
	"github.com/callrelay/callrelay/internal/phone"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/spool"
	"github.com/callrelay/callrelay/internal/twiml"
)

// A webhook that fails inside still answers TwiML: a live caller must never meet a 500 or an
// empty body. Handlers answer from the call's stored routing, else from the routing cache,
// else with an apology.

// respondPlan renders a plan, or an apology if rendering fails.
func respondPlan(w http.ResponseWriter, r *http.Request, b *twiml.Builder, rt callrelay.Routing, plan callrelay.Plan) {
	f := r.PostForm
	doc, err := b.Respond(rt, plan, twiml.Inbound{CallSid: f.Get("CallSid"), From: f.Get("From"), To: f.Get("To")})
	if err != nil {
		logger(r.Context()).Error("render twiml", slog.String("call_sid", r.PostForm.Get("CallSid")),
			slog.String("error", err.Error()))
		doc = twiml.Apology(rt.Language, rt.Voice)
	}
	writeTwiML(w, doc)
}

// fallbackRouting is what a webhook answers with when the store failed: this replica's cached
// routing of the number, if it has one. It counts which fallback was taken.
func fallbackRouting(cache *routingCache, m *metrics, route, number string) (callrelay.Routing, bool) {
	rt, ok := cache.get(number)
	kind := "apology"
	if ok {
		kind = "cache"
	}
	m.fallbacks.WithLabelValues(route, kind).Inc()
	return rt, ok
}

func handleVoice(db *postgres.DB, b *twiml.Builder, cache *routingCache, m *metrics, sp spooler, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := logger(r.Context())
		sid, to, from := r.PostForm.Get("CallSid"), r.PostForm.Get("To"), r.PostForm.Get("From")
		if sid == "" || to == "" {
			log.Warn("voice webhook without CallSid or To: rejected", slog.String("call_sid", sid), slog.String("to", to))
			writeTwiML(w, twiml.Reject())
			return
		}
		res, err := db.StartInbound(r.Context(), inboundCall(r.PostForm))
		rt := res.Routing
		switch {
		case callrelay.ErrorCode(err) == callrelay.ENOTFOUND:
			log.Warn("call to an unknown number: rejected", slog.String("call_sid", sid), slog.String("to", to))
			writeTwiML(w, twiml.Reject())
			return
		case err != nil:
			log.Error("voice webhook: store", slog.String("call_sid", sid), slog.String("error", err.Error()))
			// The caller is answered from the cache; the call is recorded when the database is back.
			if sp.replayed(w, r) {
				return
			}
			sp.keep(r, twiml.PathVoice)
			var ok bool
			if rt, ok = fallbackRouting(cache, m, twiml.PathVoice, to); !ok {
				writeTwiML(w, twiml.Apology("", ""))
				return
			}
			// The schedule and caller policies apply as the store would have applied them.
			d := callrelay.Decide(rt, from, now())
			rt, res.Reason, res.Rule = d.Routing, d.Reason, d.Rule
			// A conference needs the store (participants, who answered): without it, forward
			// plainly. The call connects; it cannot be held.
			rt.Mode = callrelay.ModeDirect
		default:
			if res.Number != nil {
				// The number's routing, not the call's: the next call is decided afresh from it.
				cache.put(to, *res.Number)
			}
			// The caller enters the conference only with its deadline written: without it a
			// lost callback could leave them in the wait music for hours. A replayed webhook's
			// caller was forwarded directly (the conference needs the store): no deadline.
			_, replay := spool.ReplayOf(r.Context())
			if rt.Mode == callrelay.ModeConference && callrelay.PlanInbound(rt).Action == callrelay.ActForward && !replay {
				if err := conference.Watch(r.Context(), db, sid); err != nil {
					log.Error("voice webhook: conference deadline; forwarding directly", slog.String("call_sid", sid), slog.String("error", err.Error()))
					rt.Mode = callrelay.ModeDirect
				}
			}
		}
		plan := callrelay.PlanInbound(rt)
		if res.Reason != "" {
			log.Info("call decided", slog.String("call_sid", sid), slog.String("to", to),
				slog.String("decision", res.Reason), slog.String("rule", res.Rule), slog.String("action", plan.Action.String()))
		} else if plan.Action == callrelay.ActReject {
			log.Info("call to a disabled number: rejected", slog.String("call_sid", sid), slog.String("to", to))
		}
		respondPlan(w, r, b, rt, plan)
	})
}

// maxCallerName bounds the CallerName kept: Twilio's CNAM is 15 characters.
const maxCallerName = 64

// inboundCall is what a voice webhook tells of a new call. CallerName (sent with caller-name
// lookup only) is shown to the owner: cleaned of control and bidi characters and bounded.
func inboundCall(f url.Values) callrelay.InboundCall {
	return callrelay.InboundCall{CallSid: f.Get("CallSid"), Number: f.Get("To"), From: f.Get("From"),
		CallToken: f.Get("CallToken"), CallerName: phone.Clean(f.Get("CallerName"), maxCallerName)}
}

// adoptCall records a call the store does not know: it arrived while the database was down
// and was forwarded from the cache. Without it, the voicemail that follows would be lost.
func adoptCall(db *postgres.DB, r *http.Request) error {
	f := r.PostForm
	_, err := db.StartCall(r.Context(), inboundCall(f))
	if err == nil {
		logger(r.Context()).Warn("call unknown to the store: recorded late", slog.String("call_sid", f.Get("CallSid")))
	}
	return err
}

func handleDialOutcome(db *postgres.DB, b *twiml.Builder, cache *routingCache, m *metrics, sp spooler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := logger(r.Context())
		f := r.PostForm
		attempt, _ := strconv.Atoi(r.URL.Query().Get("attempt"))
		o := callrelay.DialOutcome{
			CallSid:         f.Get("CallSid"),
			Attempt:         max(attempt, 0),
			DialCallStatus:  f.Get("DialCallStatus"),
			DialCallSid:     f.Get("DialCallSid"),
			DurationSeconds: formInt(f.Get("DialCallDuration")),
			SipResponseCode: formInt(f.Get("DialSipResponseCode")),
			SipCallID:       f.Get("DialSipCallId"),
			SipHeaders:      sipHeaders(f),
			CallerStatus:    f.Get("CallStatus"),
		}
		rt, plan, err := db.RecordDialOutcome(r.Context(), o)
		if callrelay.ErrorCode(err) == callrelay.ENOTFOUND && adoptCall(db, r) == nil {
			rt, plan, err = db.RecordDialOutcome(r.Context(), o)
		}
		if err != nil {
			log.Error("dial outcome: store", slog.String("call_sid", o.CallSid), slog.String("error", err.Error()))
			if sp.replayed(w, r) {
				return
			}
			sp.keep(r, twiml.PathDialOutcome)
			cached, ok := fallbackRouting(cache, m, twiml.PathDialOutcome, f.Get("To"))
			if !ok {
				if callrelay.PlanDialAction(callrelay.Routing{}, callrelay.CallState{}, o).Action == callrelay.ActHangup {
					writeTwiML(w, twiml.Hangup())
				} else {
					writeTwiML(w, twiml.Apology("", ""))
				}
				return
			}
			rt, plan = cached, callrelay.PlanDialAction(cached, callrelay.CallState{}, o)
		}
		respondPlan(w, r, b, rt, plan)
	})
}

// sipHeaders collects DialSipHeader_<name> parameters: the headers of the SIP final response.
func sipHeaders(f map[string][]string) map[string]string {
	var h map[string]string
	for k, v := range f {
		if name, ok := strings.CutPrefix(k, "DialSipHeader_"); ok && name != "" && len(v) > 0 {
			if h == nil {
				h = make(map[string]string)
			}
			h[name] = v[0]
		}
	}
	return h
}

// handleCallStatus applies a call's status callback: a leg's progress (conference.LegProgress,
// then hold.LegProgress: a held call's callee hanging up), or the caller's own status. A caller
// whose call has ended leaves nothing else to end its call's other legs: a held direct-mode
// call's callee, a conference-mode call's legs still ringing.
func handleCallStatus(db *postgres.DB, conf *conference.Service, holds *hold.Service, sp spooler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := logger(r.Context())
		f := r.PostForm
		sid, status := f.Get("CallSid"), f.Get("CallStatus")
		if sid == "" || status == "" {
			http.Error(w, "CallSid and CallStatus are required", http.StatusBadRequest)
			return
		}
		if sp.behind(r) {
			sp.callback(w, r, twiml.PathCallStatus)
			return
		}
		at := eventTime(f.Get("Timestamp"), sp.received(r))
		var known bool
		var err error
		// A <Dial> noun's leg has a ParentCallSid; a conference participant's call has none, and
		// its status callback URL names the caller's call instead.
		parent := f.Get("ParentCallSid")
		if parent == "" {
			parent = r.URL.Query().Get(twiml.QueryCall)
		}
		if parent != "" && parent != sid {
			seq := -1
			if n := formInt(f.Get("SequenceNumber")); n != nil {
				seq = *n
			}
			p := callrelay.LegProgress{
				CallSid: sid, ParentCallSid: parent, Status: status, Sequence: seq, At: at,
				Target: f.Get("To"), TargetIndex: formInt(r.URL.Query().Get("target")),
				SipResponseCode: formInt(f.Get("SipResponseCode")), DurationSeconds: formInt(f.Get("CallDuration")),
			}
			var res callrelay.LegResult
			if res, err = conf.LegProgress(r.Context(), p); err == nil && res.Known {
				holds.LegProgress(p, res)
			}
			known = res.Known
		} else {
			var res callrelay.CallStatusResult
			res, err = db.RecordCallStatus(r.Context(), sid, status, at)
			known = res.Known
			// What is left once the caller has gone: a held direct-mode call's other leg and
			// queues, a conference-mode call's legs still ringing. A call never held in direct
			// mode (most) has nothing; a hold that starts after this read finishes the call
			// itself (RecordHoldOutcome's Finish).
			if err == nil && known && callrelay.IsTerminal(status) {
				if res.Mode == callrelay.ModeDirect && res.Held {
					holds.CallerEnded(sid, status)
				}
				if res.Mode == callrelay.ModeConference {
					conf.CallerEnded(sid)
				}
			}
		}
		if err != nil {
			log.Error("call status: store", slog.String("call_sid", sid), slog.String("error", err.Error()))
			sp.callback(w, r, twiml.PathCallStatus)
			return
		}
		if !known {
			log.Warn("call status for an unknown call: ignored", slog.String("call_sid", sid),
				slog.String("parent_call_sid", f.Get("ParentCallSid")), slog.String("status", status))
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// callStatuses are the statuses GET /api/calls?status= accepts.
var callStatuses = append([]string{callrelay.StatusRinging, callrelay.StatusInProgress, callrelay.StatusVoicemail},
	callrelay.TerminalStatuses...)

func handleListCalls(db *postgres.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := callrelay.CallFilter{Status: q.Get("status")}
		if f.Status != "" && !slices.Contains(callStatuses, f.Status) {
			writeError(w, r, callrelay.Invalidf("status", "status %q is not a call status.", f.Status))
			return
		}
		var err error
		if f.Limit, err = queryLimit(r); err != nil {
			writeError(w, r, err)
			return
		}
		calls, err := db.ListCalls(r.Context(), f)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"calls": calls})
	})
}

// queryLimit reads ?limit=, 0 when absent (the store's default).
func queryLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > postgres.MaxListLimit {
		return 0, callrelay.Invalidf("limit", "limit must be a number from 1 to %d.", postgres.MaxListLimit)
	}
	return n, nil
}

func handleGetCall(db *postgres.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := db.GetCall(r.Context(), r.PathValue("callSid"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
}

// eventTime is a callback's Timestamp (RFC 2822, as Twilio writes it), else when it arrived.
func eventTime(s string, received time.Time) time.Time {
	if ts, err := time.Parse(time.RFC1123Z, s); err == nil {
		return ts.UTC()
	}
	return received.UTC()
}
