package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/recordings"
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
			sp.callback(w, r, "/twilio/recording-status")
			return
		}
		log := logger(r.Context()).With(slog.String("call_sid", rec.CallSid), slog.String("recording_sid", rec.RecordingSid))
		vm, err := db.RecordRecording(r.Context(), rec, transcriptWait)
		switch {
		case callrelay.ErrorCode(err) == callrelay.ENOTFOUND:
			log.Warn("recording of an unknown call: ignored", slog.String("status", rec.Status))
		case err != nil:
			log.Error("recording status: store", slog.String("error", err.Error()))
			sp.callback(w, r, "/twilio/recording-status")
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
			sp.callback(w, r, "/twilio/transcription")
			return
		}
		err := db.RecordTranscription(r.Context(), t)
		switch {
		case callrelay.ErrorCode(err) == callrelay.EINVALID:
			http.Error(w, callrelay.ErrorMessage(err), http.StatusBadRequest)
			return
		case err != nil:
			logger(r.Context()).Error("transcription: store", slog.String("call_sid", t.CallSid), slog.String("error", err.Error()))
			sp.callback(w, r, "/twilio/transcription")
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
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return nil, callrelay.Invalidf("id", "Voicemail id %q is not a positive number.", r.PathValue("id"))
	}
	return db.GetVoicemail(r.Context(), id)
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

// handleVoicemailAudio streams a recording to ops, fetched from Twilio with the account's
// credentials. stall bounds a stream that makes no progress (streamAudio); 0 means
// DefaultAudioStall.
func handleVoicemailAudio(db *postgres.DB, media *recording.Fetcher, store *recordings.Store, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every answer, the audio and the errors: a browser must never guess another type.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		vm, err := pathVoicemail(db, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if err := serveAudio(w, r, audioSource{db, store, media}, vm, stall); err != nil {
			writeError(w, r, err)
		}
	})
}

// handlePublicAudio serves the link in the owner's email: no credentials, but an HMAC over
// the voicemail and the link's expiry. Every refusal is the same 403, so a prober learns
// nothing about which voicemails exist.
func handlePublicAudio(db *postgres.DB, media *recording.Fetcher, store *recordings.Store, links *recording.Links, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		q := r.URL.Query()
		if err := links.Verify(r.PathValue("id"), q.Get("expires"), q.Get("sig")); err != nil {
			http.Error(w, "This link is invalid or has expired.", http.StatusForbidden)
			return
		}
		vm, err := pathVoicemail(db, r)
		if err != nil {
			status := statusOf[callrelay.ErrorCode(err)]
			http.Error(w, http.StatusText(status), status)
			return
		}
		if err := serveAudio(w, r, audioSource{db, store, media}, vm, stall); err != nil {
			status := statusOf[callrelay.ErrorCode(err)]
			msg := "The recording is not available right now."
			if status == http.StatusGone {
				msg = "This voicemail's recording has been deleted."
			}
			http.Error(w, msg, status)
		}
	})
}

// DefaultAudioStall is how long an audio stream may make no progress (Deps.AudioStall).
const DefaultAudioStall = 30 * time.Second

// streamTimeout bounds one audio stream whatever its progress: a client reading a trickle must
// not hold two connections for hours either.
const streamTimeout = 30 * time.Minute

// audioChunk is how much of a recording is read from Twilio, then written to the client, at once.
const audioChunk = 32 << 10

// streamAudio copies the recording to w. It returns an error only before anything is written.
// Progress keeps a stream alive (up to streamTimeout): each chunk must come from Twilio, and go
// to the client, within stall, or the stream is cut and both connections (the client's and
// Twilio's) are freed. Without that, a client that stops reading holds both until streamTimeout.
// A stream cut on Twilio's side is aborted, never ended as if complete.
func streamAudio(w http.ResponseWriter, r *http.Request, media *recording.Fetcher, vm *callrelay.Voicemail, stall time.Duration) error {
	if stall <= 0 {
		stall = DefaultAudioStall
	}
	log := logger(r.Context()).With(slog.Int64("voicemail_id", vm.ID))
	ctx, cancel := context.WithTimeout(r.Context(), streamTimeout)
	defer cancel()
	end, _ := ctx.Deadline()
	m, err := media.Open(ctx, vm.RecordingURL)
	if err != nil {
		log.Warn("recording fetch", slog.String("error", err.Error()))
		var te *recording.TwilioError
		switch {
		case errors.Is(err, recording.ErrNotFound):
			return callrelay.Errorf(callrelay.ENOTFOUND, "Twilio has no recording %s (deleted?).", vm.RecordingSid)
		case errors.As(err, &te):
			return &callrelay.Error{Code: callrelay.EUPSTREAM, Message: "Twilio refused the recording.",
				TwilioCode: te.Code, TwilioMessage: te.Message}
		case errors.Is(err, recording.ErrNotAudio):
			return callrelay.Errorf(callrelay.EUPSTREAM, "Twilio answered something other than MP3 or WAV audio for recording %s.", vm.RecordingSid)
		case errors.Is(err, recording.ErrBadRedirect):
			return callrelay.Errorf(callrelay.EUPSTREAM, "Twilio redirected recording %s to a URL it is not fetched from.", vm.RecordingSid)
		case errors.Is(err, recording.ErrForeignHost), errors.Is(err, recording.ErrInvalidURL):
			// Credentials go to TWILIO_API_URL's recordings only; this stored URL is elsewhere.
			return fmt.Errorf("voicemail %d: recording URL refused: %w", vm.ID, err)
		}
		return callrelay.Errorf(callrelay.EUPSTREAM, "Cannot fetch the recording from Twilio.")
	}
	defer m.Body.Close()
	// A read from Twilio that stalls cancels the download, which ends the read.
	upstream := time.AfterFunc(stall, cancel)
	defer upstream.Stop()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", m.ContentType)
	if m.Size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	}
	h.Set("Content-Disposition", fmt.Sprintf(`inline; filename="voicemail-%d%s"`, vm.ID, audioExtension(m.ContentType)))
	h.Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, audioChunk)
	deadlines := true
	for {
		upstream.Reset(stall)
		n, rerr := m.Body.Read(buf)
		upstream.Stop()
		if n > 0 {
			// Write deadlines are on the machine's clock (net.Conn's), not the injected one.
			deadline := callrelay.Deadline(stall)
			if deadline.After(end) {
				deadline = end
			}
			if err := rc.SetWriteDeadline(deadline); err != nil && deadlines {
				deadlines = false // once: the writer does not support it (a test's recorder)
				log.Warn("recording stream: cannot set the write deadline", slog.String("error", err.Error()))
			}
			_, werr := w.Write(buf[:n])
			if werr == nil {
				werr = rc.Flush() // to the socket within the deadline, not into a buffer
			}
			if werr != nil {
				log.Warn("recording stream cut: client", slog.String("error", werr.Error()))
				return nil
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case r.Context().Err() != nil:
			log.Warn("recording stream cut: client gone", slog.String("error", rerr.Error()))
			return nil
		case rerr != nil:
			if errors.Is(ctx.Err(), context.Canceled) {
				rerr = fmt.Errorf("no data from Twilio for %s: %w", stall, rerr)
			}
			log.Warn("recording stream cut: Twilio", slog.String("error", rerr.Error()))
			panic(http.ErrAbortHandler) // the client sees a cut stream, not a short recording
		}
	}
}

// audioExtension is the file name's extension for a recording's content type.
func audioExtension(contentType string) string {
	switch contentType {
	case "audio/x-wav", "audio/wav", "audio/wave", "audio/vnd.wave":
		return ".wav"
	}
	return ".mp3"
}
