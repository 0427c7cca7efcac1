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
		tw.Handle("POST "+twiml.PathVoice, handleVoice(d.DB, b, cache, m, sp, d.Now))
		tw.Handle("POST "+twiml.PathDialOutcome, handleDialOutcome(d.DB, b, cache, m, sp))
		tw.Handle("POST "+twiml.PathCallStatus, handleCallStatus(d.DB, d.Conference, d.Hold, sp))
		// Screening: documents a dialed leg runs before it is bridged (screen.go).
		tw.Handle("POST "+twiml.PathScreen, handleScreen(d.DB, d.Conference, b, d.Now))
		tw.Handle("POST "+twiml.PathScreenResult, handleScreenResult(d.DB, d.Conference, b, d.Now))
		tw.Handle("POST "+twiml.PathScreenAMD, handleScreenAMD(d.DB, d.Now, sp))
		tw.Handle("POST "+twiml.PathConferenceStatus, handleConferenceStatus(d.Conference, sp))
		tw.Handle("POST "+twiml.PathVoicemail, handleVoicemail(d.DB, b, cache, m, sp))
		tw.Handle("POST "+twiml.PathRecording, handleRecording(d.DB, b))
		tw.Handle("POST "+twiml.PathRecordingStatus, handleRecordingStatus(d.DB, d.Config.TranscriptWait, sp))
		tw.Handle("POST "+twiml.PathTranscription, handleTranscription(d.DB, sp))
		// GET for a holdUrl fetched with HoldMethod GET; the signature then covers the query.
		tw.Handle("GET "+twiml.PathHoldMusic, handleHoldMusic(b, d.Config.HoldMusicURL.String()))
		tw.Handle("POST "+twiml.PathHoldMusic, handleHoldMusic(b, d.Config.HoldMusicURL.String()))
		// Direct-mode hold: documents for redirected legs, and the actions that end a bridge.
		tw.Handle("POST "+twiml.PathHoldWait, handleHoldWait(b))
		tw.Handle("POST "+twiml.PathHoldEnqueue, handleHoldEnqueue(b))
		tw.Handle("POST "+twiml.PathHoldResume, handleHoldResume(b))
		tw.Handle("POST "+twiml.PathEnqueueOutcome, handleHeldLegOutcome(d.DB, d.Hold, b, "enqueue"))
		tw.Handle("POST "+twiml.PathBridgeOutcome, handleHeldLegOutcome(d.DB, d.Hold, b, "bridge"))
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

	// The ops console and the owners' inbox (console*.go): pages with a Content-Security-Policy;
	// the console behind a session from the ops token, the inbox behind the owner's signed link.
	mux.Group(func(web chi.Router) {
		c := newConsole(d, cache)
		web.Use(consoleHeaders)
		web.Handle("GET /console/static/*", handleConsoleStatic())
		web.Handle("GET /console/login", c.handleLoginPage())
		web.Handle("POST /console/login", c.handleLogin())
		web.Handle("GET /inbox", c.handleInbox())
		web.Handle("GET /inbox/voicemails/{id}", c.handleInboxVoicemail())
		web.Handle("GET /inbox/voicemails/{id}/audio", c.handleInboxAudio())
		web.Handle("POST /inbox/voicemails/{id}/handled", c.handleInboxHandled())
		web.Group(func(ops chi.Router) {
			ops.Use(c.requireSession)
			ops.Handle("POST /console/logout", c.handleLogout())
			ops.Handle("GET /console", c.handleLive())
			ops.Handle("GET /console/events", c.handleConsoleEvents())
			ops.Handle("POST /console/calls/{callSid}/hold", c.handleConsoleHold(true))
			ops.Handle("POST /console/calls/{callSid}/unhold", c.handleConsoleHold(false))
			ops.Handle("GET /console/calls", c.handleCalls())
			ops.Handle("GET /console/calls/{callSid}", c.handleCall())
			ops.Handle("GET /console/voicemails", c.handleVoicemails())
			ops.Handle("GET /console/voicemails/{id}/audio", c.handleConsoleAudio())
			ops.Handle("POST /console/voicemails/{id}/handled", c.handleConsoleHandled())
			ops.Handle("POST /console/voicemails/{id}/delete", c.handleConsoleDelete())
			ops.Handle("GET /console/numbers", c.handleNumbers())
			ops.Handle("GET /console/numbers/{number}", c.handleNumber())
			ops.Handle("POST /console/numbers/{number}", c.handleSaveNumber())
		})
	})

	mux.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeErrorStatus(w, http.StatusNotFound, errorJSON{Code: "not_found", Message: "No such route."})
	})
}
