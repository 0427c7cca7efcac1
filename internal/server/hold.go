package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/hold"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/twiml"
)

// Hold and resume: the ops API, the hold music, and the direct-mode hold webhooks (see package
// hold for the moves). The documents a redirected leg fetches (hold-wait, hold-enqueue,
// hold-resume) depend only on their URL: they never touch the database and cannot fail. The two
// actions (enqueue-outcome, bridge-outcome) read the hold state to tell a bridge that ended
// because of a hold from one that ended because someone hung up; a hold still waiting for
// Twilio is read as done (its redirect is what ended the bridge).

// holdBody is the body of POST /api/calls/{callSid}/hold and /unhold.
type holdBody struct {
	Party *string `json:"party"`
}

// holder holds and resumes a party of a call (*hold.Service): the ops API and the console.
type holder interface {
	Hold(ctx context.Context, req callrelay.HoldRequest) (*callrelay.Call, error)
}

// applyHold makes an ops hold request of r: once Twilio is asked, the answer must be recorded
// even if the ops client goes away.
func applyHold(r *http.Request, svc holder, req callrelay.HoldRequest) (*callrelay.Call, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), hold.Timeout)
	defer cancel()
	return svc.Hold(ctx, req)
}

func handleHold(svc holder, toHold bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		party, err := readParty(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		c, err := applyHold(r, svc, callrelay.HoldRequest{
			CallSid: r.PathValue("callSid"), Party: party, Hold: toHold, By: "ops",
			RequestID: w.Header().Get("X-Request-Id"),
		})
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
}

// readParty reads {"party":"caller"|"callee"}; an empty body means the caller.
func readParty(r *http.Request) (string, error) {
	body, err := readBody(r)
	if err != nil {
		return "", err
	}
	var in holdBody
	if len(bytes.TrimSpace(body)) > 0 {
		if err := callrelay.DecodeJSON(bytes.NewReader(body), &in); err != nil {
			return "", err
		}
	}
	if in.Party == nil {
		return callrelay.PartyCaller, nil
	}
	if !callrelay.ValidParty(*in.Party) {
		return "", callrelay.Invalidf("party", "party must be %q or %q, not %s.", callrelay.PartyCaller, callrelay.PartyCallee, strconv.Quote(*in.Party))
	}
	return *in.Party, nil
}

// handleHoldMusic answers a held party's holdUrl and a conference's waitUrl. It reads nothing
// but configuration and cannot fail: a waitUrl that fails keeps the conference from starting.
func handleHoldMusic(b *twiml.Builder, musicURL string) http.Handler {
	doc := b.HoldMusic(musicURL)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeTwiML(w, doc)
	})
}

// holdParams reads ?call=&party= of a hold webhook.
func holdParams(r *http.Request) (callSid, party string, ok bool) {
	q := r.URL.Query()
	callSid, party = q.Get(twiml.QueryCall), q.Get(twiml.QueryParty)
	return callSid, party, callSid != "" && callrelay.ValidParty(party)
}

// writeHoldDoc answers a hold document, or keeps the leg on the line with the built-in hold
// loop if it cannot be rendered.
func writeHoldDoc(w http.ResponseWriter, r *http.Request, b *twiml.Builder, doc []byte, err error) {
	if err != nil {
		logger(r.Context()).Error("render hold twiml", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		doc = b.HoldMusic("")
	}
	writeTwiML(w, doc)
}

func handleHoldWait(b *twiml.Builder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callSid, party, ok := holdParams(r)
		if !ok {
			writeTwiML(w, b.HoldMusic(""))
			return
		}
		doc, err := b.HoldWait(callSid, party, r.URL.Query().Get("again") != "")
		writeHoldDoc(w, r, b, doc, err)
	})
}

func handleHoldEnqueue(b *twiml.Builder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callSid, party, ok := holdParams(r)
		if !ok {
			writeTwiML(w, b.HoldMusic(""))
			return
		}
		doc, err := b.Enqueue(callSid, party)
		writeHoldDoc(w, r, b, doc, err)
	})
}

func handleHoldResume(b *twiml.Builder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callSid, party, ok := holdParams(r)
		queue := r.URL.Query().Get(twiml.QueryQueue)
		if !ok || !callrelay.ValidParty(queue) {
			writeTwiML(w, b.HoldMusic(""))
			return
		}
		doc, err := b.ResumeDial(callSid, party, queue)
		writeHoldDoc(w, r, b, doc, err)
	})
}

// handleHeldLegOutcome answers the end of a held call's bridge or queue stay for the party's
// leg: the <Enqueue> action (QueueResult) or a resuming <Dial><Queue>'s action. With a hold
// pending the leg goes (back) into its queue or waits; without one, the bridge ended because
// someone hung up and the call is over: this leg hangs up and the other is hung up.
func handleHeldLegOutcome(db *postgres.DB, holds *hold.Service, b *twiml.Builder, kind string) http.Handler {
	route := kind + "-outcome"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := logger(r.Context())
		f := r.PostForm
		callSid, party, ok := holdParams(r)
		if !ok {
			writeTwiML(w, twiml.Hangup())
			return
		}
		var queueSid string
		if kind == "enqueue" {
			queueSid = f.Get("QueueSid")
		}
		c, err := db.HeldCallState(r.Context(), callSid, route, party, queueSid)
		if err != nil {
			// The leg stays on the line rather than being cut off by our failure.
			log.Error("held leg outcome: store", slog.String("call_sid", callSid), slog.String("error", err.Error()))
			writeTwiML(w, b.HoldMusic(""))
			return
		}
		result := f.Get("QueueResult")
		if kind == "bridge" {
			result = f.Get("DialCallStatus")
		}
		plan, held := callrelay.PlanHeldLeg(party, c.Hold)
		gone := callrelay.CallerGone(f.Get("CallStatus"))
		switch {
		case c.Known && held && !gone && !callrelay.IsTerminal(c.Status):
			log.Info("held leg: "+plan.Action.String(), slog.String("call_sid", callSid), slog.String("party", party),
				slog.String("result", result))
			doc, err := b.Respond(callrelay.Routing{}, plan, twiml.Inbound{CallSid: callSid})
			writeHoldDoc(w, r, b, doc, err)
		default:
			// Nobody is held (or this leg hung up): the bridge ended for good.
			log.Info("held call over", slog.String("call_sid", callSid), slog.String("party", party), slog.String("result", result))
			if c.Known {
				// This leg has gone or hangs up by our answer; the other is hung up.
				holds.FinishHeld(callSid, f.Get("CallSid"), kind+" "+result, queueSid)
			}
			writeTwiML(w, twiml.Hangup())
		}
	})
}
