package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/recordings"
	"github.com/callrelay/callrelay/internal/server"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiliofake"
)

// recordingsServer is s's server with a recording store (a folder on disk) and the Twilio
// REST fake for deletions; voicemail n has been copied into the store, as the copy job does.
type recordingsServer struct {
	h     http.Handler
	store *recordings.Store
	fake  *twiliofake.Fake
}

func newRecordingsServer(t testing.TB, s *testServer) *recordingsServer {
	t.Helper()
	store, err := recordings.Open(context.Background(), "file://"+filepath.ToSlash(filepath.Join(t.TempDir(), "recordings")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fake := twiliofake.Start(t, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	apiURL, _ := url.Parse(s.media.srv.URL)
	restURL, _ := url.Parse(fake.URL)
	media := recording.NewFetcher(apiURL, accountSID, authToken, nil)
	// A store of its own on s's database, that enqueues the recordings' jobs (for a queue
	// never started).
	inserts, err := postgres.NewJobs(s.db.Pool(), clocktest.Now)
	if err != nil {
		t.Fatal(err)
	}
	db := postgres.New(s.db.Pool(), postgres.Options{Now: clocktest.Fixed(t0), Jobs: inserts})
	jobs := &recordings.Jobs{DB: db, Store: store, Media: media, Now: clocktest.Now, Log: slog.New(slog.DiscardHandler),
		Twilio: twilioapi.New(twilioapi.Config{AccountSID: accountSID, AuthToken: authToken, BaseURL: restURL, Timeout: 5 * time.Second})}
	h := server.NewServer(server.Deps{
		Logger: slog.New(slog.DiscardHandler), Config: s.cfg, DB: db, Registry: prometheus.NewRegistry(),
		Media: media, Links: s.links, Conference: s.conf, Now: clocktest.Fixed(t0),
		Recordings: store, PurgeRecording: jobs.Purge,
	})
	return &recordingsServer{h: h, store: store, fake: fake}
}

// copyVoicemail stores data as voicemail id's verified copy.
func (rs *recordingsServer) copyVoicemail(t testing.TB, s *testServer, id int64, n int, data []byte) {
	t.Helper()
	ctx := context.Background()
	key := "voicemail/" + recSid(n) + ".mp3"
	size, sum, err := rs.store.Put(ctx, key, "audio/mpeg", bytes.NewReader(data), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.SaveAudioCopy(ctx, id, callrelay.AudioCopy{Key: key, ContentType: "audio/mpeg", Size: size, SHA256: sum}); err != nil {
		t.Fatal(err)
	}
}

func (rs *recordingsServer) get(path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+opsToken)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	rs.h.ServeHTTP(rec, req)
	return rec
}

func (rs *recordingsServer) delete(path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodDelete, path, nil)
	req.Header.Set("Authorization", "Bearer "+opsToken)
	rec := httptest.NewRecorder()
	rs.h.ServeHTTP(rec, req)
	return rec
}

// minuteOfAudio is about a minute of Twilio's MP3 (0.24 MB), not one repeated word.
func minuteOfAudio() []byte {
	b := make([]byte, 240_000)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	copy(b, "ID3\x04\x00")
	return b
}

// TestAudio_StoredCopyRange: with a copy in the store, both audio endpoints serve it, not
// Twilio's, with Range: 206 and Content-Range for each seek a player makes, 416 past the end,
// and the MP3's type, extension and nosniff.
func TestAudio_StoredCopyRange(t *testing.T) {
	s := newTestServer(t)
	rs := newRecordingsServer(t, s)
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, "CA"+fmt.Sprintf("%032x", 901), 901, 60)
	audio := minuteOfAudio()
	rs.copyVoicemail(t, s, 1, 901, audio)
	before := s.media.requests.Load()

	for _, path := range []string{"/api/voicemails/1/audio", audioLink(s, "1")} {
		whole := rs.get(path)
		if whole.Code != http.StatusOK || !bytes.Equal(whole.Body.Bytes(), audio) {
			t.Fatalf("GET %s: %d, %d bytes; want 200 and the copy", path, whole.Code, whole.Body.Len())
		}
		h := whole.Header()
		if h.Get("Content-Type") != "audio/mpeg" || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Accept-Ranges") != "bytes" || h.Get("Content-Disposition") != `inline; filename="voicemail-1.mp3"` {
			t.Errorf("GET %s headers: %v", path, h)
		}
		// A player's seeks: the start, the middle, the end, from an offset on, and a suffix.
		for _, c := range []struct {
			rng        string
			start, end int // inclusive
		}{
			{"bytes=0-1", 0, 1},
			{"bytes=120000-120099", 120000, 120099},
			{"bytes=239990-239999", 239990, 239999},
			{"bytes=200000-", 200000, len(audio) - 1},
			{"bytes=-500", len(audio) - 500, len(audio) - 1},
			{"bytes=5-9", 5, 9},
		} {
			rec := rs.get(path, "Range", c.rng)
			want := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, len(audio))
			if rec.Code != http.StatusPartialContent || rec.Header().Get("Content-Range") != want ||
				!bytes.Equal(rec.Body.Bytes(), audio[c.start:c.end+1]) ||
				rec.Header().Get("Content-Length") != strconv.Itoa(c.end-c.start+1) {
				t.Errorf("GET %s Range %s: %d %q, %d bytes; want 206 %q", path, c.rng, rec.Code,
					rec.Header().Get("Content-Range"), rec.Body.Len(), want)
			}
			if rec.Header().Get("Content-Type") != "audio/mpeg" {
				t.Errorf("Range %s: Content-Type %q", c.rng, rec.Header().Get("Content-Type"))
			}
		}
		if rec := rs.get(path, "Range", fmt.Sprintf("bytes=%d-", len(audio))); rec.Code != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("GET %s past the end: %d, want 416", path, rec.Code)
		}
		// A changed copy (another ETag) makes If-Range answer the whole file.
		if rec := rs.get(path, "Range", "bytes=0-9", "If-Range", `"other"`); rec.Code != http.StatusOK || rec.Body.Len() != len(audio) {
			t.Errorf("GET %s with a stale If-Range: %d, %d bytes; want 200 and all", path, rec.Code, rec.Body.Len())
		}
	}
	if n := s.media.requests.Load() - before; n != 0 {
		t.Errorf("%d requests to Twilio's media: the copy must be served", n)
	}
}

// TestAudio_RangeOverTCP: seeks over a real connection, with the write deadlines set.
func TestAudio_RangeOverTCP(t *testing.T) {
	s := newTestServer(t)
	rs := newRecordingsServer(t, s)
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, "CA"+fmt.Sprintf("%032x", 902), 902, 60)
	audio := minuteOfAudio()
	rs.copyVoicemail(t, s, 1, 902, audio)
	srv := httptest.NewServer(rs.h)
	t.Cleanup(srv.Close)
	for _, off := range []int{0, 1000, 100000, 239000} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+audioLink(s, "1"), nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+999))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, audio[off:off+1000]) {
			t.Errorf("seek to %d: %d, %d bytes", off, resp.StatusCode, len(body))
		}
	}
}

// TestAudio_NoCopyStreamsFromTwilio: without a copy (not made yet) the audio comes from Twilio.
func TestAudio_NoCopyStreamsFromTwilio(t *testing.T) {
	s := newTestServer(t)
	rs := newRecordingsServer(t, s)
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, "CA"+fmt.Sprintf("%032x", 903), 903, 60)
	if rec := rs.get("/api/voicemails/1/audio"); rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), s.media.audio) {
		t.Errorf("no copy: %d, %d bytes; want Twilio's audio", rec.Code, rec.Body.Len())
	}
}

// TestDeleteVoicemail: DELETE removes the audio (our copy and Twilio's) and the transcript
// now; the audio endpoints then answer 410, the voicemail still says who called and when;
// deleting again is a 204 that changes nothing.
func TestDeleteVoicemail(t *testing.T) {
	s := newTestServer(t)
	rs := newRecordingsServer(t, s)
	sid := "CA" + fmt.Sprintf("%032x", 904)
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, sid, 904, 60)
	transcription(t, s, sid, recSid(904), "completed", "Call me back.")
	rs.copyVoicemail(t, s, 1, 904, minuteOfAudio())
	rs.fake.AddRecording(recSid(904))
	link := audioLink(s, "1")

	if rec := rs.delete("/api/voicemails/1"); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	if rs.fake.HasRecording(recSid(904)) {
		t.Error("Twilio still has the recording")
	}
	if _, err := rs.store.ReadAll(context.Background(), "voicemail/"+recSid(904)+".mp3", 1<<30); !recordings.IsNotFound(err) {
		t.Errorf("our copy after DELETE: %v, want not found", err)
	}
	for _, path := range []string{"/api/voicemails/1/audio", link} {
		rec := rs.get(path)
		if rec.Code != http.StatusGone || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s after DELETE: %d, want 410", path, rec.Code)
		}
	}
	vm := getVoicemail(t, s, "1")
	audio, _ := vm["audio"].(map[string]any)
	if vm["transcript"] != nil || vm["from"] != caller || vm["recorded_at"] == nil || audio["expired_at"] == nil || audio["copy"] != nil {
		t.Errorf("voicemail after DELETE: %v", vm)
	}
	if rec := rs.delete("/api/voicemails/1"); rec.Code != http.StatusNoContent {
		t.Errorf("DELETE again: %d, want 204", rec.Code)
	}
	if n := len(rs.fake.RequestsFor("DeleteRecording")); n != 1 {
		t.Errorf("%d DeleteRecording requests, want 1", n)
	}
	if rec := rs.delete("/api/voicemails/99"); rec.Code != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d, want 404", rec.Code)
	}
	if rec := rs.delete("/api/voicemails/x"); rec.Code != http.StatusBadRequest {
		t.Errorf("DELETE bad id: %d, want 400", rec.Code)
	}
}

// TestDeleteVoicemail_TwilioDown: Twilio failing, the voicemail is still deleted here (410 at
// once) and the deletion at Twilio is left to the queued purge job.
func TestDeleteVoicemail_TwilioDown(t *testing.T) {
	s := newTestServer(t)
	rs := newRecordingsServer(t, s)
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, "CA"+fmt.Sprintf("%032x", 905), 905, 60)
	rs.fake.AddRecording(recSid(905))
	rs.fake.Fail("DeleteRecording", twiliofake.Failure{Status: http.StatusInternalServerError, Code: 20500})
	if rec := rs.delete("/api/voicemails/1"); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	if rec := rs.get("/api/voicemails/1/audio"); rec.Code != http.StatusGone {
		t.Errorf("audio after DELETE: %d, want 410", rec.Code)
	}
	var jobs int
	if err := s.db.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = 'purge_recording' AND state = 'available'`).Scan(&jobs); err != nil || jobs != 1 {
		t.Errorf("purge jobs waiting: %d, %v; want 1", jobs, err)
	}
	if !rs.fake.HasRecording(recSid(905)) {
		t.Error("the recording went at Twilio although Twilio failed")
	}
}
