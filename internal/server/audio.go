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

// handleVoicemailAudio serves a recording to ops: the stored copy, else fetched from Twilio
// with the account's credentials (serveAudio). stall bounds a stream that makes no progress (streamAudio); 0 means
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

// handlePublicAudio serves the audio link of emails sent before the owner's inbox (whose
// links go to /inbox): no credentials, but an HMAC over
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
			status := statusOf(callrelay.ErrorCode(err))
			http.Error(w, http.StatusText(status), status)
			return
		}
		if err := serveAudio(w, r, audioSource{db, store, media}, vm, stall); err != nil {
			status := statusOf(callrelay.ErrorCode(err))
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

// audioSource is where a voicemail's audio is served from: callrelay's own copy in the
// recording store when there is one, else Twilio's.
type audioSource struct {
	db    *postgres.DB
	store *recordings.Store // nil: no store
	media *recording.Fetcher
}

// serveAudio answers a voicemail's audio: 410 once it has expired; the stored copy, with HTTP
// Range (206) since players need it to seek; else streamed from Twilio (streamAudio). It
// returns an error only before anything is written.
func serveAudio(w http.ResponseWriter, r *http.Request, src audioSource, vm *callrelay.Voicemail, stall time.Duration) error {
	a, err := src.db.AudioState(r.Context(), vm.ID)
	if err != nil {
		return err
	}
	if a.ExpiredAt != nil {
		return callrelay.Errorf(callrelay.EGONE, "Voicemail %d's audio was deleted on %s.", vm.ID, a.ExpiredAt.Format(time.DateOnly))
	}
	if a.Copy != nil && src.store != nil {
		err := serveCopy(w, r, src.store, vm, a.Copy, stall)
		if err == nil {
			return nil
		}
		logger(r.Context()).Warn("recording store", slog.Int64("voicemail_id", vm.ID), slog.String("error", err.Error()))
		if a.TwilioDeletedAt != nil {
			return callrelay.Errorf(callrelay.EUNAVAILABLE, "The recording store cannot be read right now; try again later.")
		}
		// Twilio's copy is still there.
	}
	return streamAudio(w, r, src.media, vm, stall)
}

// serveCopy serves the stored copy through http.ServeContent: Range and If-Range (206, 416),
// HEAD, and an ETag from the copy's SHA-256. Each read from the store gives the write that
// follows stall to reach the client, so a slow player is not cut by the server's write
// timeout, and one that stops reading is (up to streamTimeout in all).
func serveCopy(w http.ResponseWriter, r *http.Request, store *recordings.Store, vm *callrelay.Voicemail, c *callrelay.AudioCopy, stall time.Duration) error {
	if stall <= 0 {
		stall = DefaultAudioStall
	}
	ctx, cancel := context.WithTimeout(r.Context(), streamTimeout)
	defer cancel()
	rd, err := store.NewReader(ctx, c.Key)
	if err != nil {
		return err
	}
	defer rd.Close()
	if rd.Size() != c.Size {
		return fmt.Errorf("stored copy %s is %d bytes, not %d", c.Key, rd.Size(), c.Size)
	}
	end, _ := ctx.Deadline()
	h := w.Header()
	h.Set("Content-Type", c.ContentType) // set: ServeContent then neither sniffs nor guesses
	h.Set("Content-Disposition", fmt.Sprintf(`inline; filename="voicemail-%d%s"`, vm.ID, c.Extension()))
	h.Set("Cache-Control", "private, no-store")
	h.Set("ETag", strconv.Quote(c.SHA256))
	http.ServeContent(w, r, "", c.CopiedAt, &deadlineReader{ReadSeeker: rd, rc: http.NewResponseController(w), stall: stall, end: end})
	return nil
}

// deadlineReader extends the response's write deadline before each chunk is handed on.
type deadlineReader struct {
	io.ReadSeeker
	rc    *http.ResponseController
	stall time.Duration
	end   time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	n, err := d.ReadSeeker.Read(p)
	if n > 0 {
		// Write deadlines are on the machine's clock (net.Conn's), not the injected one.
		deadline := callrelay.Deadline(d.stall)
		if deadline.After(d.end) {
			deadline = d.end
		}
		_ = d.rc.SetWriteDeadline(deadline) // unsupported by a test's recorder: nothing to bound
	}
	return n, err
}
