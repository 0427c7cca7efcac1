package server

import (
	"log/slog"
	"net/http"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/twiml"
)

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
