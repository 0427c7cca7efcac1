package server

import (
	"context"
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
		if _, err := db.ExpireVoicemail(r.Context(), vm.ID, callrelay.ExpiredByRequest); err != nil {
			writeError(w, r, err)
			return
		}
		if purge != nil {
			if err := purge(r.Context(), vm.ID); err != nil {
				logger(r.Context()).Warn("voicemail delete: audio left to the purge job",
					slog.Int64("voicemail_id", vm.ID), slog.String("error", err.Error()))
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
