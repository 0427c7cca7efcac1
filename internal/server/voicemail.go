package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/twiml"
)

// Callbacks that cannot be stored are spooled for later (spooler.callback), or answer 503 so
// that a retry may deliver them again. Nothing is half-written: each store method is one
// transaction.

func handleRecordingStatus(db *postgres.DB, transcriptWait time.Duration, sp spooler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := r.PostForm
		rec := callrelay.Recording{
			CallSid:      f.Get("CallSid"),
			RecordingSid: f.Get("RecordingSid"),
			RecordingURL: f.Get("RecordingUrl"),
			Status:       f.Get("RecordingStatus"),
		}
		if rec.CallSid == "" || rec.RecordingSid == "" || rec.Status == "" {
			http.Error(w, "CallSid, RecordingSid and RecordingStatus are required", http.StatusBadRequest)
			return
		}
		if rec.Status == "completed" && rec.RecordingURL == "" {
			http.Error(w, "RecordingUrl is required for a completed recording", http.StatusBadRequest)
			return
		}
		if d := formInt(f.Get("RecordingDuration")); d != nil {
			rec.DurationSeconds = max(*d, 0)
		}
		if t, err := time.Parse(time.RFC1123Z, f.Get("RecordingStartTime")); err == nil {
			rec.StartedAt = &t
		}
		if sp.behind(r) {
			sp.callback(w, r, twiml.PathRecordingStatus)
			return
		}
		log := logger(r.Context()).With(slog.String("call_sid", rec.CallSid), slog.String("recording_sid", rec.RecordingSid))
		vm, err := db.RecordRecording(r.Context(), rec, transcriptWait)
		switch {
		case callrelay.ErrorCode(err) == callrelay.ENOTFOUND:
			log.Warn("recording of an unknown call: ignored", slog.String("status", rec.Status))
		case err != nil:
			log.Error("recording status: store", slog.String("error", err.Error()))
			sp.callback(w, r, twiml.PathRecordingStatus)
			return
		case vm != nil:
			log.Info("voicemail stored", slog.Int64("voicemail_id", vm.ID), slog.String("transcript", vm.TranscriptStatus))
		default:
			log.Info("recording without a message", slog.String("status", rec.Status))
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func handleTranscription(db *postgres.DB, sp spooler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := r.PostForm
		t := callrelay.Transcription{
			CallSid:          f.Get("CallSid"),
			RecordingSid:     f.Get("RecordingSid"),
			TranscriptionSid: f.Get("TranscriptionSid"),
			Status:           f.Get("TranscriptionStatus"),
			Text:             f.Get("TranscriptionText"),
		}
		if t.CallSid == "" || t.RecordingSid == "" {
			http.Error(w, "CallSid and RecordingSid are required", http.StatusBadRequest)
			return
		}
		if sp.behind(r) {
			sp.callback(w, r, twiml.PathTranscription)
			return
		}
		err := db.RecordTranscription(r.Context(), t)
		switch {
		case callrelay.ErrorCode(err) == callrelay.EINVALID:
			http.Error(w, callrelay.ErrorMessage(err), http.StatusBadRequest)
			return
		case err != nil:
			logger(r.Context()).Error("transcription: store", slog.String("call_sid", t.CallSid), slog.String("error", err.Error()))
			sp.callback(w, r, twiml.PathTranscription)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// voicemailJSON adds where ops fetch the audio.
type voicemailJSON struct {
	*callrelay.Voicemail
	AudioURL string                 `json:"audio_url"`
	Audio    *callrelay.StoredAudio `json:"audio,omitempty"` // GET /api/voicemails/{id} only
}

func toVoicemailJSON(vm *callrelay.Voicemail) voicemailJSON {
	return voicemailJSON{Voicemail: vm, AudioURL: fmt.Sprintf("/api/voicemails/%d/audio", vm.ID)}
}

func handleListVoicemails(db *postgres.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := callrelay.VoicemailFilter{Number: q.Get("number")}
		if f.Number != "" && !callrelay.ValidNumber(f.Number) {
			writeError(w, r, callrelay.Invalidf("number", "number %q is not E.164, like +15551230000 (URL-encode + as %%2B).", f.Number))
			return
		}
		var err error
		if f.Limit, err = queryLimit(r); err != nil {
			writeError(w, r, err)
			return
		}
		vms, err := db.ListVoicemails(r.Context(), f)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := make([]voicemailJSON, len(vms))
		for i, vm := range vms {
			out[i] = toVoicemailJSON(vm)
		}
		writeJSON(w, http.StatusOK, map[string]any{"voicemails": out})
	})
}

// pathVoicemail loads the voicemail of the {id} in the path.
func pathVoicemail(db *postgres.DB, r *http.Request) (*callrelay.Voicemail, error) {
	id, err := voicemailID(r)
	if err != nil {
		return nil, err
	}
	return db.GetVoicemail(r.Context(), id)
}

// voicemailID reads the {id} of the path.
func voicemailID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, callrelay.Invalidf("id", "Voicemail id %q is not a positive number.", r.PathValue("id"))
	}
	return id, nil
}

func handleGetVoicemail(db *postgres.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vm, err := pathVoicemail(db, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := toVoicemailJSON(vm)
		a, err := db.AudioState(r.Context(), vm.ID)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out.Audio = &a
		writeJSON(w, http.StatusOK, out)
	})
}

func handleVoicemail(db *postgres.DB, b *twiml.Builder, cache *routingCache, m *metrics, sp spooler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid, to := r.PostForm.Get("CallSid"), r.PostForm.Get("To")
		rt, err := db.StartVoicemail(r.Context(), sid)
		if callrelay.ErrorCode(err) == callrelay.ENOTFOUND && adoptCall(db, r) == nil {
			rt, err = db.StartVoicemail(r.Context(), sid)
		}
		if err != nil {
			logger(r.Context()).Error("voicemail: store", slog.String("call_sid", sid), slog.String("error", err.Error()))
			if sp.replayed(w, r) {
				return
			}
			sp.keep(r, twiml.PathVoicemail)
			var ok bool
			if rt, ok = fallbackRouting(cache, m, twiml.PathVoicemail, to); !ok {
				writeTwiML(w, twiml.Apology("", ""))
				return
			}
		}
		render := b.Voicemail
		if !rt.Voicemail.Enabled {
			// A conference-mode call nobody answered is sent here whether or not it has voicemail.
			render = b.Unavailable
		}
		doc, err := render(rt)
		if err != nil {
			logger(r.Context()).Error("render voicemail", slog.String("call_sid", sid), slog.String("error", err.Error()))
			doc = twiml.Apology(rt.Language, rt.Voice)
		}
		writeTwiML(w, doc)
	})
}

func handleRecording(db *postgres.DB, b *twiml.Builder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := r.PostForm.Get("CallSid")
		rt, err := db.CallRouting(r.Context(), sid)
		if err != nil {
			// The message is recorded either way; thank the caller in the default language.
			logger(r.Context()).Warn("recording: routing", slog.String("call_sid", sid), slog.String("error", err.Error()))
			rt = callrelay.Routing{Language: callrelay.DefaultLanguage}
		}
		doc, err := b.RecordingThanks(rt)
		if err != nil {
			doc = twiml.Hangup()
		}
		writeTwiML(w, doc)
	})
}

// handleDeleteVoicemail deletes a voicemail's audio and transcript now: it expires at once
// (the audio endpoints answer 410), and the audio is deleted in the store and at Twilio, here
// if they answer, else by the queued purge job, retried. Who called and when stay. Deleting
// again changes nothing: 204 each time.
func handleDeleteVoicemail(db *postgres.DB, purge func(context.Context, int64) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vm, err := pathVoicemail(db, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if err := deleteVoicemail(r, db, purge, vm.ID); err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// deleteVoicemail expires voicemail id now (its audio endpoints answer 410) and deletes its
// audio, here or, failing that, by the queued purge job (the API's and the console's delete).
func deleteVoicemail(r *http.Request, db *postgres.DB, purge func(context.Context, int64) error, id int64) error {
	if _, err := db.ExpireVoicemail(r.Context(), id, callrelay.ExpiredByRequest); err != nil {
		return err
	}
	if purge != nil {
		if err := purge(r.Context(), id); err != nil {
			logger(r.Context()).Warn("voicemail delete: audio left to the purge job",
				slog.Int64("voicemail_id", id), slog.String("error", err.Error()))
		}
	}
	return nil
}
