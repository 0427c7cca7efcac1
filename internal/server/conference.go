package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/twiml"
)

// eventTime is a callback's Timestamp (RFC 2822, as Twilio writes it), else when it arrived.
func eventTime(s string, received time.Time) time.Time {
	if ts, err := time.Parse(time.RFC1123Z, s); err == nil {
		return ts.UTC()
	}
	return received.UTC()
}

func handleConferenceStatus(svc *conference.Service, sp spooler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := r.PostForm
		ev := callrelay.ConferenceEvent{
			CallSid:       f.Get("FriendlyName"), // callrelay names the conference after the caller's CallSid
			ConferenceSid: f.Get("ConferenceSid"),
			Event:         f.Get("StatusCallbackEvent"),
			Participant:   f.Get("CallSid"),
			Label:         f.Get("ParticipantLabel"),
			Sequence:      -1,
			At:            eventTime(f.Get("Timestamp"), sp.received(r)),
			Hold:          f.Get("Hold") == "true",
			ReasonLeft:    f.Get("ReasonParticipantLeft"),
			ReasonEnded:   f.Get("ReasonConferenceEnded"),
			EndingCallSid: f.Get("CallSidEndingConference"),
		}
		if n := formInt(f.Get("SequenceNumber")); n != nil {
			ev.Sequence = *n
		}
		if ev.CallSid == "" || ev.ConferenceSid == "" || ev.Event == "" {
			http.Error(w, "FriendlyName, ConferenceSid and StatusCallbackEvent are required", http.StatusBadRequest)
			return
		}
		if !callrelay.ValidSID("CA", ev.CallSid) {
			http.Error(w, "FriendlyName is not a CallSid: callrelay names its conferences after the caller's call", http.StatusBadRequest)
			return
		}
		if sp.behind(r) {
			sp.callback(w, r, twiml.PathConferenceStatus)
			return
		}
		res, err := svc.ConferenceEvent(r.Context(), ev)
		if err != nil {
			logger(r.Context()).Error("conference status: store", slog.String("call_sid", ev.CallSid), slog.String("error", err.Error()))
			sp.callback(w, r, twiml.PathConferenceStatus)
			return
		}
		if !res.Known {
			logger(r.Context()).Warn("conference event for an unknown call: ignored", slog.String("friendly_name", ev.CallSid),
				slog.String("conference_sid", ev.ConferenceSid), slog.String("event", ev.Event))
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleHoldMusic answers a held party's holdUrl and a conference's waitUrl. It reads nothing
// but configuration and cannot fail: a waitUrl that fails keeps the conference from starting.
func handleHoldMusic(b *twiml.Builder, musicURL string) http.Handler {
	doc := b.HoldMusic(musicURL)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeTwiML(w, doc)
	})
}

// holdTimeout bounds a hold request: the lock on the call, and Twilio's answer.
const holdTimeout = 15 * time.Second

// holdBody is the body of POST /api/calls/{callSid}/hold and /unhold.
type holdBody struct {
	Party *string `json:"party"`
}

func handleHold(svc *conference.Service, hold bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		party, err := readParty(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		// Once Twilio is asked, the answer must be recorded even if the ops client goes away.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), holdTimeout)
		defer cancel()
		c, err := svc.Hold(ctx, postgres.HoldRequest{
			CallSid: r.PathValue("callSid"), Party: party, Hold: hold, By: "ops",
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
