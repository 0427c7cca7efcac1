package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/internal/twiml"
)

// addRoutes maps every route of docs/design.md. chi answers no route with a redirect (Twilio drops
// the parameters on 301/302): /twilio/voice/ is a 404, not a redirect to /twilio/voice.
func addRoutes(mux chi.Router, d Deps, m *metrics, b *twiml.Builder, v *signature.Validator, cache *routingCache) {
	sp := spooler{sp: d.Spool, now: d.Now, m: m}
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(d.DB))
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))

	mux.Group(func(tw chi.Router) {
		tw.Use(twilioSignature(v, d.Config.InsecureSkipSignature, m), detach)
		tw.Handle("POST /twilio/voice", handleVoice(d.DB, b, cache, m, sp, d.Now))
		tw.Handle("POST /twilio/dial-outcome", handleDialOutcome(d.DB, b, cache, m, sp))
		tw.Handle("POST /twilio/call-status", handleCallStatus(d.DB, d.Conference, d.Hold, sp))
		// Screening: documents a dialed leg runs before it is bridged (screen.go).
		tw.Handle("POST "+twiml.PathScreen, handleScreen(d.DB, d.Conference, b, d.Now))
		tw.Handle("POST "+twiml.PathScreenResult, handleScreenResult(d.DB, d.Conference, b, d.Now))
		tw.Handle("POST "+twiml.PathScreenAMD, handleScreenAMD(d.DB, d.Now, sp))
		tw.Handle("POST /twilio/conference-status", handleConferenceStatus(d.Conference, sp))
		tw.Handle("POST /twilio/voicemail", handleVoicemail(d.DB, b, cache, m, sp))
		tw.Handle("POST /twilio/recording", handleRecording(d.DB, b))
		tw.Handle("POST /twilio/recording-status", handleRecordingStatus(d.DB, d.Config.TranscriptWait, sp))
		tw.Handle("POST /twilio/transcription", handleTranscription(d.DB, sp))
		// GET for a holdUrl fetched with HoldMethod GET; the signature then covers the query.
		tw.Handle("GET /twilio/hold-music", handleHoldMusic(b, d.Config.HoldMusicURL.String()))
		tw.Handle("POST /twilio/hold-music", handleHoldMusic(b, d.Config.HoldMusicURL.String()))
		// Direct-mode hold: documents for redirected legs, and the actions that end a bridge.
		tw.Handle("POST /twilio/hold-wait", handleHoldWait(b))
		tw.Handle("POST /twilio/hold-enqueue", handleHoldEnqueue(b))
		tw.Handle("POST /twilio/hold-resume", handleHoldResume(b))
		tw.Handle("POST /twilio/enqueue-outcome", handleHeldLegOutcome(d.DB, d.Hold, b, "enqueue"))
		tw.Handle("POST /twilio/bridge-outcome", handleHeldLegOutcome(d.DB, d.Hold, b, "bridge"))
	})

	mux.Group(func(api chi.Router) {
		api.Use(opsAuth(d.Config.OpsToken.Value()))
		api.Handle("GET /api/numbers", handleListNumbers(d.DB))
		api.Handle("PUT /api/numbers/{number}", handlePutNumber(d.DB, cache))
		api.Handle("GET /api/numbers/{number}", handleGetNumber(d.DB, d.Now))
		api.Handle("DELETE /api/numbers/{number}", handleDeleteNumber(d.DB, cache))
		api.Handle("GET /api/calls", handleListCalls(d.DB))
		api.Handle("GET /api/calls/{callSid}", handleGetCall(d.DB))
		api.Handle("POST /api/calls/{callSid}/hold", handleHold(d.Hold, true))
		api.Handle("POST /api/calls/{callSid}/unhold", handleHold(d.Hold, false))
		api.Handle("GET /api/voicemails", handleListVoicemails(d.DB))
		api.Handle("GET /api/voicemails/{id}", handleGetVoicemail(d.DB))
		api.Handle("GET /api/voicemails/{id}/audio", handleVoicemailAudio(d.DB, d.Media, d.Recordings, d.AudioStall))
		api.Handle("DELETE /api/voicemails/{id}", handleDeleteVoicemail(d.DB, d.PurgeRecording))
	})

	// For owners, from their email: signed and expiring instead of a token.
	mux.Handle("GET /voicemails/{id}/audio", handlePublicAudio(d.DB, d.Media, d.Recordings, d.Links, d.AudioStall))

	mux.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeErrorStatus(w, http.StatusNotFound, errorJSON{Code: "not_found", Message: "No such route."})
	})
}
