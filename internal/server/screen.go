package server

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/twiml"
)

// Screening webhooks (docs/design.md "Screening"). Twilio runs them on a dialed leg after it
// answers and before it is bridged; the caller keeps hearing ringback. Whatever goes wrong
// answers <Hangup/>, which ends this leg only: an acceptance that cannot be recorded must not
// bridge, because the Dial action decides from the acceptances recorded.

// maxDigits bounds the Digits kept on the timeline (the screen asks for one); maxAnsweredBy
// the AnsweredBy (Twilio's longest is machine_end_silence).
const (
	maxDigits     = 8
	maxAnsweredBy = 32
)

// screenLeg reads what every screen request carries: the leg, the caller's call (Twilio's
// ParentCallSid, or for a conference-mode leg, a call of its own, the signed URL's call) and
// the target index of the URL.
func screenLeg(r *http.Request) (leg, parent string, target int, ok bool) {
	f := r.PostForm
	leg, parent = f.Get("CallSid"), f.Get("ParentCallSid")
	if parent == "" {
		parent = r.URL.Query().Get(twiml.QueryCall)
	}
	target, err := strconv.Atoi(r.URL.Query().Get(twiml.QueryTarget))
	ok = err == nil && target >= 0 && target < callrelay.MaxTargets && leg != "" && parent != "" && leg != parent
	return leg, parent, target, ok
}

func boundAnsweredBy(s string) string {
	if len(s) > maxAnsweredBy {
		return s[:maxAnsweredBy]
	}
	return s
}

// isMachine reports whether Twilio's AnsweredBy names a machine: machine_start,
// machine_end_beep, machine_end_silence, machine_end_other, or fax.
func isMachine(answeredBy string) bool {
	return strings.HasPrefix(answeredBy, "machine_") || answeredBy == "fax"
}

// accepter ends the other legs of a conference-mode call once one accepted
// (*conference.Service).
type accepter interface {
	Accepted(callSid, leg string)
}

// conferenceJoin answers a conference-mode leg whose screen accepted (whisper: the announce
// line, or ""): it joins the caller's conference if it is the call's callee, and ends
// the other legs; a leg that accepted after another, or after the caller went to voicemail or
// hung up, is hung up. It reads the call again: RecordScreen has just decided the callee.
func conferenceJoin(r *http.Request, db *postgres.DB, conf accepter, b *twiml.Builder, leg, parent string, target int, whisper string) []byte {
	log := logger(r.Context())
	c, err := db.ScreenCall(r.Context(), parent)
	if err != nil || c.Callee != leg || c.Status != callrelay.StatusInProgress {
		log.Info("screen: accepted but not the callee: hung up", slog.String("call_sid", parent), slog.String("leg", leg),
			slog.String("callee", c.Callee), slog.String("status", c.Status), slog.Any("error", err))
		return twiml.Hangup()
	}
	doc, err := b.ConferenceJoin(c.Routing, parent, target, whisper)
	if err != nil {
		log.Error("render conference join", slog.String("call_sid", parent), slog.String("error", err.Error()))
		return twiml.Hangup()
	}
	conf.Accepted(parent, leg)
	return doc
}

// handleScreen answers a leg's screen: <Hangup/> for a machine, the whisper for announce, the
// question for press, an empty document (bridge) for a leg that only needed machine
// detection — in conference mode, instead of bridging, the leg joins the caller's conference.
// Each is a "screen" entry on the call's timeline.
func handleScreen(db *postgres.DB, conf accepter, b *twiml.Builder, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := logger(r.Context())
		leg, parent, target, ok := screenLeg(r)
		if !ok {
			log.Warn("screen without a leg, parent or target: hung up", slog.String("call_sid", leg))
			writeTwiML(w, twiml.Hangup())
			return
		}
		c, err := db.ScreenCall(r.Context(), parent)
		if err != nil || target >= len(c.Routing.Targets) {
			log.Error("screen: call", slog.String("call_sid", parent), slog.String("leg", leg), slog.Any("error", err))
			writeTwiML(w, twiml.Hangup())
			return
		}
		conference := c.Mode == callrelay.ModeConference
		call := "" // the caller's call in the screen's URLs: a conference-mode leg has no ParentCallSid
		if conference {
			call = parent
			if c.Status != callrelay.StatusRinging {
				// Someone else took the call, or the caller went to voicemail or hung up.
				log.Info("screen: the call no longer rings: hung up", slog.String("call_sid", parent), slog.String("leg", leg), slog.String("status", c.Status))
				writeTwiML(w, twiml.Hangup())
				return
			}
		}
		tg := c.Routing.Targets[target]
		screen := tg.Screening()
		answeredBy := boundAnsweredBy(r.PostForm.Get("AnsweredBy"))
		if c.Routing.MachineDetection && tg.Type == callrelay.TargetPhone && answeredBy == "" {
			// Twilio sends the detection result to the amdStatusCallback, which may come just
			// after this request: wait for it a little, then go on as for a person.
			if answeredBy, err = db.LegAnsweredBy(r.Context(), leg, parent); err != nil {
				log.Warn("screen: machine detection result", slog.String("leg", leg), slog.String("error", err.Error()))
			}
			waited, _ := strconv.Atoi(r.URL.Query().Get(twiml.QueryWait))
			if answeredBy == "" && waited >= 0 && waited < twiml.AMDWait {
				doc, err := b.ScreenWait(call, target, waited)
				if err != nil {
					doc = twiml.Hangup()
				}
				writeTwiML(w, doc)
				return
			}
		}
		outcome := postgres.ScreenOffered
		switch {
		case isMachine(answeredBy):
			outcome = postgres.ScreenMachine
		case screen != callrelay.ScreenPress:
			outcome = postgres.ScreenAccepted // announce, or machine detection alone: a person
		}
		stored, err := db.RecordScreen(r.Context(), callrelay.ScreenEvent{
			CallSid: leg, ParentCallSid: parent, Target: r.PostForm.Get("To"), TargetIndex: target,
			Screen: screen, Outcome: outcome, AnsweredBy: answeredBy, At: now(),
		})
		if err != nil {
			log.Error("screen: store", slog.String("call_sid", parent), slog.String("leg", leg), slog.String("error", err.Error()))
			writeTwiML(w, twiml.Hangup())
			return
		}
		log.Info("screen "+stored, slog.String("call_sid", parent), slog.String("leg", leg), slog.String("answered_by", answeredBy))
		var doc []byte
		switch {
		case stored == postgres.ScreenOffered:
			doc, err = b.ScreenPress(c.Routing, call, target, c.Number, c.From)
		case stored == postgres.ScreenAccepted && conference:
			whisper := ""
			if screen == callrelay.ScreenAnnounce {
				whisper = twiml.ScreenLine(c.Routing, c.Number, c.From)
			}
			doc = conferenceJoin(r, db, conf, b, leg, parent, target, whisper)
		case stored == postgres.ScreenAccepted && screen == callrelay.ScreenAnnounce:
			doc, err = b.ScreenAnnounce(c.Routing, c.Number, c.From)
		case stored == postgres.ScreenAccepted:
			doc = twiml.Empty()
		default:
			doc = twiml.Hangup()
		}
		if err != nil {
			log.Error("render screen", slog.String("call_sid", parent), slog.String("error", err.Error()))
			doc = twiml.Hangup()
		}
		writeTwiML(w, doc)
	})
}

// handleScreenResult answers the key a leg pressed (the <Gather> action), or its silence (the
// screen's closing <Redirect>, without Digits): 1 accepts, recorded before the answer lets
// Twilio bridge the leg (an empty document) or, in conference mode (the URL names the call),
// joins it to the caller's conference; anything else hangs the leg up.
func handleScreenResult(db *postgres.DB, conf accepter, b *twiml.Builder, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := logger(r.Context())
		leg, parent, target, ok := screenLeg(r)
		if !ok {
			log.Warn("screen result without a leg, parent or target: hung up", slog.String("call_sid", leg))
			writeTwiML(w, twiml.Hangup())
			return
		}
		digits := r.PostForm.Get("Digits")
		outcome := postgres.ScreenDeclined
		switch digits {
		case "1":
			outcome = postgres.ScreenAccepted
		case "":
			outcome = postgres.ScreenUnanswered
		}
		if len(digits) > maxDigits {
			digits = digits[:maxDigits]
		}
		stored, err := db.RecordScreen(r.Context(), callrelay.ScreenEvent{
			CallSid: leg, ParentCallSid: parent, Target: r.PostForm.Get("To"), TargetIndex: target,
			Screen: callrelay.ScreenPress, Outcome: outcome, Digits: digits, At: now(),
		})
		if err != nil {
			log.Error("screen result: store", slog.String("call_sid", parent), slog.String("leg", leg), slog.String("error", err.Error()))
			writeTwiML(w, twiml.Hangup())
			return
		}
		log.Info("screen "+stored, slog.String("call_sid", parent), slog.String("leg", leg))
		if stored == postgres.ScreenAccepted && r.PostForm.Get("ParentCallSid") == "" {
			writeTwiML(w, conferenceJoin(r, db, conf, b, leg, parent, target, ""))
			return
		}
		if stored == postgres.ScreenAccepted {
			writeTwiML(w, twiml.Empty())
			return
		}
		writeTwiML(w, twiml.Hangup())
	})
}

// handleScreenAMD stores a phone leg's answering-machine detection result (its
// amdStatusCallback: 204, or 400 without the leg, the call or the target). A machine is the
// leg's screen outcome: its screen hangs it up, now or at its next request.
func handleScreenAMD(db *postgres.DB, now func() time.Time, sp spooler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := logger(r.Context())
		f, q := r.PostForm, r.URL.Query()
		leg, parent, answeredBy := f.Get("CallSid"), q.Get(twiml.QueryCall), boundAnsweredBy(f.Get("AnsweredBy"))
		target, err := strconv.Atoi(q.Get(twiml.QueryTarget))
		if leg == "" || parent == "" || leg == parent || answeredBy == "" || err != nil || target < 0 || target >= callrelay.MaxTargets {
			http.Error(w, "CallSid, AnsweredBy, call and target are required", http.StatusBadRequest)
			return
		}
		c, err := db.ScreenCall(r.Context(), parent)
		switch {
		case callrelay.ErrorCode(err) == callrelay.ENOTFOUND || (err == nil && target >= len(c.Routing.Targets)):
			log.Warn("machine detection for an unknown call or target: ignored", slog.String("call_sid", parent), slog.String("leg", leg))
			w.WriteHeader(http.StatusNoContent)
			return
		case err != nil:
			log.Error("machine detection: store", slog.String("call_sid", parent), slog.String("error", err.Error()))
			sp.callback(w, r, twiml.PathScreenAMD)
			return
		}
		e := callrelay.ScreenEvent{CallSid: leg, ParentCallSid: parent, Target: f.Get("To"), TargetIndex: target,
			Screen: c.Routing.Targets[target].Screening(), Outcome: postgres.ScreenMachine, AnsweredBy: answeredBy, At: now()}
		err = db.RecordAnsweredBy(r.Context(), e)
		if err == nil && isMachine(answeredBy) {
			_, err = db.RecordScreen(r.Context(), e)
		}
		if err != nil && callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
			log.Error("machine detection: store", slog.String("call_sid", parent), slog.String("error", err.Error()))
			sp.callback(w, r, twiml.PathScreenAMD)
			return
		}
		log.Info("machine detection", slog.String("call_sid", parent), slog.String("leg", leg), slog.String("answered_by", answeredBy))
		w.WriteHeader(http.StatusNoContent)
	})
}
