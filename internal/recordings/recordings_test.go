package recordings_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/recordings"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/voicemail"
)

// The tests run the real parts: PostgreSQL (one database per test), River working the jobs,
// the Twilio REST fake checking DeleteRecording against the OpenAPI spec, a media server that
// serves a recording while the fake has it, and a real store: a folder on disk, or S3 spoken by
// gofakes3 in-process.

const (
	number   = "+15551230000"
	caller   = "+15559870000"
	owner    = "dana@example.com"
	routing  = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]%s}`
	mp3Type  = "audio/mpeg"
	s3Bucket = "callrelay-recordings"
)

// fakeMP3 is a minute of Twilio's MP3 in size (32 kbit/s: 240,000 bytes), with frame headers.
func fakeMP3(size int) []byte {
	b := append([]byte("ID3\x04\x00"), bytes.Repeat([]byte{0xff, 0xfb, 0x90, 0x44}, size/4)...)
	for i := 5; i < len(b); i += 97 {
		b[i] ^= byte(i) // not one repeated word: a shifted or truncated copy shows
	}
	return b[:size]
}

type rig struct {
	t      testing.TB
	db     *postgres.DB
	jobs   *recordings.Jobs
	queue  *river.Client[pgx.Tx]
	fake   *twiliofake.Fake
	media  *httptest.Server
	audio  []byte
	events <-chan *river.Event
	shift  atomic.Int64 // how far the store's clock runs ahead of the test clock
	mail   string       // where the emails are written
}

// newRig starts everything on a store at storeURL.
func newRig(t testing.TB, storeURL string) *rig {
	t.Helper()
	r := &rig{t: t, audio: fakeMP3(240_000)}
	r.fake = twiliofake.Start(t, twiliofake.Options{})
	r.media = httptest.NewServer(http.HandlerFunc(r.serveMedia))
	t.Cleanup(r.media.Close)

	pool := pgtest.NewPool(t)
	r.db = postgres.New(pool)
	now := func() time.Time { return clocktest.Now().Add(time.Duration(r.shift.Load())) }
	r.db.Now = now
	mediaURL, _ := url.Parse(r.media.URL)
	restURL, _ := url.Parse(r.fake.URL)
	log := slog.New(slog.DiscardHandler)
	r.jobs = &recordings.Jobs{
		DB:     r.db,
		Media:  recording.NewFetcher(mediaURL, r.fake.AccountSID, r.fake.AuthToken, nil),
		Twilio: twilioapi.New(twilioapi.Config{AccountSID: r.fake.AccountSID, AuthToken: r.fake.AuthToken, BaseURL: restURL, Timeout: 5 * time.Second}),
		Now:    now, Log: log, RetentionDays: 90, TimelineRetentionDays: 365,
	}
	if storeURL != "" {
		store, err := recordings.Open(context.Background(), storeURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		r.jobs.Store, r.db.CopyRecordings = store, true
	}
	r.mail = t.TempDir()
	sender, err := mail.New("", r.mail, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n := voicemail.NewNotifier(r.db, sender, r.jobs.Media, recording.NewLinks(mediaURL, []string{"k"}, recording.DefaultTTL, clocktest.Now),
		"callrelay@example.com", clocktest.Now, log)
	n.StoredAudio = r.jobs.StoredAudio
	r.queue, err = voicemail.NewQueue(pool, n, voicemail.QueueOptions{FetchPollInterval: 100 * time.Millisecond, Now: clocktest.Now}, r.jobs.Register)
	if err != nil {
		t.Fatal(err)
	}
	r.db.Jobs = r.queue
	var cancel func()
	r.events, cancel = r.queue.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	if err := r.queue.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		_ = r.queue.Stop(ctx)
	})
	return r
}

// serveMedia is Twilio's media URL: the recording while the fake has it, else Twilio's 404.
func (r *rig) serveMedia(w http.ResponseWriter, req *http.Request) {
	if u, p, ok := req.BasicAuth(); !ok || u != r.fake.AccountSID || p != r.fake.AuthToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	base := strings.TrimPrefix(req.URL.Path, "/2010-04-01/Accounts/"+r.fake.AccountSID+"/Recordings/")
	sid, ext, _ := strings.Cut(base, ".")
	if !r.fake.HasRecording(sid) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"code":20404,"message":"The requested resource was not found","status":404}`)
		return
	}
	if ext == "wav" {
		w.Header().Set("Content-Type", "audio/x-wav")
		w.Write(append([]byte("RIFF\x24\x00\x00\x00WAVEfmt "), r.audio...))
		return
	}
	w.Header().Set("Content-Type", mp3Type)
	w.Write(r.audio)
}

func recSid(n int) string  { return fmt.Sprintf("RE%032x", n) }
func callSid(n int) string { return fmt.Sprintf("CA%032x", n) }

// voicemail puts the number with extra routing fields, and leaves voicemail n: Twilio holds
// recording n, and its recording-status says completed.
func (r *rig) voicemail(n int, extra string) *callrelay.Voicemail {
	r.t.Helper()
	ctx := context.Background()
	rt, err := callrelay.DecodeRouting(strings.NewReader(fmt.Sprintf(routing, extra)))
	if err != nil {
		r.t.Fatal(err)
	}
	if _, _, err := r.db.PutNumber(ctx, number, rt); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.db.StartCall(ctx, callrelay.InboundCall{CallSid: callSid(n), Number: number, From: caller}); err != nil {
		r.t.Fatal(err)
	}
	r.fake.AddRecording(recSid(n))
	vm, err := r.db.RecordRecording(ctx, callrelay.Recording{CallSid: callSid(n), RecordingSid: recSid(n), Status: "completed",
		DurationSeconds: 60, RecordingURL: r.media.URL + "/2010-04-01/Accounts/" + r.fake.AccountSID + "/Recordings/" + recSid(n)}, time.Hour)
	if err != nil {
		r.t.Fatal(err)
	}
	return vm
}

// await waits for the next outcome of a job of kind: completed, failed or cancelled.
func (r *rig) await(kind string) *river.Event {
	r.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev.Job.Kind == kind {
				return ev
			}
		case <-timeout:
			r.t.Fatalf("no %s job finished in 20 s", kind)
		}
	}
}

func (r *rig) task(id int64) *callrelay.RecordingTask {
	r.t.Helper()
	task, err := r.db.RecordingTask(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return task
}

// timeline returns the outcomes of the call's entries of typ.
func (r *rig) timeline(n int, typ string) []string {
	r.t.Helper()
	call, err := r.db.GetCall(context.Background(), callSid(n))
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range call.Events {
		if e.Type == typ {
			out = append(out, e.Outcome)
		}
	}
	return out
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileURL(dir string) string { return "file://" + filepath.ToSlash(dir) }

// checkCopied asserts that voicemail id has a verified MP3 copy equal to the audio, and
// whether Twilio's copy was deleted.
func (r *rig) checkCopied(id int64, n int, deletedAtTwilio bool) *callrelay.AudioCopy {
	r.t.Helper()
	task := r.task(id)
	c := task.Audio.Copy
	if c == nil {
		r.t.Fatal("no copy recorded")
	}
	if c.Size != int64(len(r.audio)) || c.SHA256 != sum(r.audio) || c.ContentType != mp3Type {
		r.t.Errorf("copy %d bytes %s %s, want %d bytes %s %s", c.Size, c.SHA256, c.ContentType, len(r.audio), sum(r.audio), mp3Type)
	}
	if want := "voicemail/" + recSid(n) + ".mp3"; c.Key != want {
		r.t.Errorf("key %q, want %q", c.Key, want)
	}
	data, err := r.jobs.Store.ReadAll(context.Background(), c.Key, 1<<30)
	if err != nil || !bytes.Equal(data, r.audio) {
		r.t.Errorf("the store holds %d bytes (%v), not the recording", len(data), err)
	}
	if got := r.fake.HasRecording(recSid(n)); got == deletedAtTwilio {
		r.t.Errorf("Twilio still has the recording: %v, want %v", got, !deletedAtTwilio)
	}
	if got := task.Audio.TwilioDeletedAt != nil; got != deletedAtTwilio {
		r.t.Errorf("twilio_deleted_at set: %v, want %v", got, deletedAtTwilio)
	}
	if got := r.timeline(n, "recording-copy"); len(got) != 1 || got[0] != "copied" {
		r.t.Errorf("recording-copy entries %v, want [copied]", got)
	}
	return c
}

func TestCopy_FileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "recordings")
	r := newRig(t, fileURL(dir))
	vm := r.voicemail(1, "")
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	r.checkCopied(vm.ID, 1, true)
	// On the real disk, where the URL says, under its key.
	onDisk, err := os.ReadFile(filepath.Join(dir, "voicemail", recSid(1)+".mp3"))
	if err != nil || !bytes.Equal(onDisk, r.audio) {
		t.Errorf("file on disk: %d bytes, %v", len(onDisk), err)
	}
	if got := r.timeline(1, "recording-delete"); len(got) != 1 || got[0] != "deleted" {
		t.Errorf("recording-delete entries %v, want [deleted]", got)
	}
	dels := r.fake.RequestsFor("DeleteRecording")
	if len(dels) != 1 || dels[0].Status != http.StatusNoContent || dels[0].PathParams["Sid"] != recSid(1) {
		t.Errorf("DeleteRecording requests: %+v", dels)
	}
}

func TestCopy_KeptAtTwilio(t *testing.T) {
	r := newRig(t, fileURL(t.TempDir()))
	vm := r.voicemail(2, `,"voicemail":{"delete_at_twilio":false}`)
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	r.checkCopied(vm.ID, 2, false)
	if n := len(r.fake.RequestsFor("DeleteRecording")); n != 0 {
		t.Errorf("%d DeleteRecording requests, want none", n)
	}
}

func TestCopy_WAV(t *testing.T) {
	r := newRig(t, fileURL(t.TempDir()))
	vm := r.voicemail(3, `,"voicemail":{"format":"wav"}`)
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	c := r.task(vm.ID).Audio.Copy
	if c == nil || c.ContentType != "audio/x-wav" || !strings.HasSuffix(c.Key, ".wav") || c.Size != int64(len(r.audio)+16) {
		t.Errorf("WAV copy: %+v", c)
	}
}

// TestCopy_TwilioDeleteRetried: Twilio failing DeleteRecording keeps the copy and retries
// the deletion; a 404 on a later try (deleted meanwhile) counts as done.
func TestCopy_TwilioDeleteRetried(t *testing.T) {
	r := newRig(t, fileURL(t.TempDir()))
	r.fake.Fail("DeleteRecording", twiliofake.Failure{Status: http.StatusServiceUnavailable, Code: 20503, Message: "Service unavailable"})
	vm := r.voicemail(4, "")
	ev := r.await("copy_recording")
	if ev.Kind != river.EventKindJobFailed {
		t.Fatalf("copy job: %s, want failed (Twilio answered 503)", ev.Kind)
	}
	task := r.task(vm.ID)
	if task.Audio.Copy == nil || task.Audio.TwilioDeletedAt != nil || !r.fake.HasRecording(recSid(4)) {
		t.Fatalf("after a failed deletion: copy %v, twilio_deleted_at %v, at Twilio %v", task.Audio.Copy, task.Audio.TwilioDeletedAt, r.fake.HasRecording(recSid(4)))
	}
	// Gone at Twilio meanwhile: the retry's 404 is success.
	r.fake.Fail("DeleteRecording", twiliofake.Failure{Status: http.StatusNotFound, Code: 20404, Message: "not found"})
	if _, err := r.queue.JobRetry(context.Background(), ev.Job.ID); err != nil {
		t.Fatal(err)
	}
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("retried copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	if got := r.timeline(4, "recording-delete"); len(got) != 1 || got[0] != "already-gone" {
		t.Errorf("recording-delete entries %v, want [already-gone]", got)
	}
	if r.task(vm.ID).Audio.TwilioDeletedAt == nil {
		t.Error("twilio_deleted_at not set after a 404")
	}
}

// TestCopy_FileStoreOutage: the store's folder is replaced by a file (a disk gone, a mount
// lost: root ignores permission bits, so a read-only folder would not do): the copy fails and
// Twilio's copy stays. Once the folder is back, the retried job copies and deletes.
func TestCopy_FileStoreOutage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "recordings")
	r := newRig(t, fileURL(dir))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	vm := r.voicemail(5, "")
	ev := r.await("copy_recording")
	if ev.Kind != river.EventKindJobFailed {
		t.Fatalf("copy job: %s, want failed", ev.Kind)
	}
	if task := r.task(vm.ID); task.Audio.Copy != nil || task.Audio.TwilioDeletedAt != nil || !r.fake.HasRecording(recSid(5)) {
		t.Fatalf("store down: copy %v, twilio_deleted_at %v, at Twilio %v: Twilio's copy must stay", task.Audio.Copy, task.Audio.TwilioDeletedAt, r.fake.HasRecording(recSid(5)))
	}
	if n := len(r.fake.RequestsFor("DeleteRecording")); n != 0 {
		t.Fatalf("%d DeleteRecording requests while the store is down", n)
	}
	os.Remove(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := r.queue.JobRetry(context.Background(), ev.Job.ID); err != nil {
		t.Fatal(err)
	}
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("retried copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	r.checkCopied(vm.ID, 5, true)
}

// s3Server is gofakes3 on a fixed local address, so that it can be stopped and started again.
type s3Server struct {
	t       testing.TB
	addr    string
	handler http.Handler
	srv     *httptest.Server
}

func startS3(t testing.TB) *s3Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(s3Bucket); err != nil {
		t.Fatal(err)
	}
	s := &s3Server{t: t, handler: gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()}
	s.start()
	s.addr = s.srv.Listener.Addr().String()
	t.Cleanup(func() { s.srv.Close() })
	// gocloud's s3blob takes AWS's usual credentials; gofakes3 accepts any.
	t.Setenv("AWS_ACCESS_KEY_ID", "callrelay-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "callrelay-test-secret")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	return s
}

func (s *s3Server) start() {
	s.srv = httptest.NewUnstartedServer(s.handler)
	if s.addr != "" {
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			s.t.Fatal(err)
		}
		s.srv.Listener.Close()
		s.srv.Listener = l
	}
	s.srv.Start()
}

func (s *s3Server) url() string {
	return "s3://" + s3Bucket + "?region=us-east-1&use_path_style=true&disable_https=true&endpoint=" + url.QueryEscape("http://"+s.addr)
}

func TestCopy_S3(t *testing.T) {
	s3 := startS3(t)
	r := newRig(t, s3.url())
	vm := r.voicemail(6, "")
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	r.checkCopied(vm.ID, 6, true)
}

// TestCopy_S3Outage: with the S3 server stopped the copy fails and Twilio's copy stays;
// started again, the retried job copies, verifies and deletes.
func TestCopy_S3Outage(t *testing.T) {
	s3 := startS3(t)
	r := newRig(t, s3.url())
	s3.srv.Close()
	vm := r.voicemail(7, "")
	ev := r.await("copy_recording")
	if ev.Kind != river.EventKindJobFailed {
		t.Fatalf("copy job: %s, want failed", ev.Kind)
	}
	if task := r.task(vm.ID); task.Audio.Copy != nil || !r.fake.HasRecording(recSid(7)) {
		t.Fatalf("S3 down: copy %v, at Twilio %v: Twilio's copy must stay", task.Audio.Copy, r.fake.HasRecording(recSid(7)))
	}
	s3.start()
	if _, err := r.queue.JobRetry(context.Background(), ev.Job.ID); err != nil {
		t.Fatal(err)
	}
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("retried copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	r.checkCopied(vm.ID, 7, true)
}

// TestCopy_VerifyBeforeDelete: a copy made earlier that is no longer intact in the store
// (changed on disk) is not trusted: Twilio's copy is not deleted.
func TestCopy_VerifyBeforeDelete(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, fileURL(dir))
	r.fake.Fail("DeleteRecording", twiliofake.Failure{Status: http.StatusServiceUnavailable, Code: 20503})
	vm := r.voicemail(8, "")
	ev := r.await("copy_recording")
	if ev.Kind != river.EventKindJobFailed {
		t.Fatalf("copy job: %s, want failed", ev.Kind)
	}
	c := r.task(vm.ID).Audio.Copy
	if c == nil {
		t.Fatal("no copy")
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(c.Key)), []byte("truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.queue.JobRetry(context.Background(), ev.Job.ID); err != nil {
		t.Fatal(err)
	}
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobFailed {
		t.Fatalf("retry with a damaged copy: %s, want failed", ev.Kind)
	}
	if !r.fake.HasRecording(recSid(8)) || len(r.fake.RequestsFor("DeleteRecording")) != 1 {
		t.Errorf("Twilio's copy deleted after a failed verification (%d requests)", len(r.fake.RequestsFor("DeleteRecording")))
	}
}

// TestExpire: past the retention, a voicemail's audio (ours and Twilio's) and transcript go,
// who called and when stay; a number's retention_days wins over the instance's, 0 keeps
// forever; old timeline entries go too.
func TestExpire(t *testing.T) {
	r := newRig(t, fileURL(t.TempDir()))
	ctx := context.Background()
	// 9: instance default (90 days), copied and deleted at Twilio.
	vm9 := r.voicemail(9, "")
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	c9 := r.task(vm9.ID).Audio.Copy
	// 10: kept at Twilio, number's own 30 days; its copy job is done too.
	vm10 := r.voicemail(10, `,"voicemail":{"delete_at_twilio":false,"retention_days":30}`)
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	if err := r.db.RecordTranscription(ctx, callrelay.Transcription{CallSid: callSid(10), RecordingSid: recSid(10),
		TranscriptionSid: "TR1", Status: "completed", Text: "call me back"}); err != nil {
		t.Fatal(err)
	}
	// The number now keeps 30 days: 9 follows the number as it is now.
	r.shift.Store(int64(31 * 24 * time.Hour))
	n, _, err := r.jobs.Expire(ctx)
	if err != nil || n != 2 {
		t.Fatalf("expire after 31 days: %d, %v; want 2 (the number keeps 30 days)", n, err)
	}
	for range 2 {
		if ev := r.await("purge_recording"); ev.Kind != river.EventKindJobCompleted {
			t.Fatalf("purge job: %s (%v)", ev.Kind, ev.Job.Errors)
		}
	}
	for _, id := range []int64{vm9.ID, vm10.ID} {
		task := r.task(id)
		if task.Audio.ExpiredAt == nil || task.PurgedAt == nil || task.Audio.Copy != nil || task.Audio.TwilioDeletedAt == nil {
			t.Errorf("voicemail %d: expired %v purged %v copy %v twilio_deleted_at %v", id, task.Audio.ExpiredAt, task.PurgedAt, task.Audio.Copy, task.Audio.TwilioDeletedAt)
		}
		vm, err := r.db.GetVoicemail(ctx, id)
		if err != nil || vm.Transcript != nil || vm.From != caller || vm.RecordedAt.IsZero() {
			t.Errorf("voicemail %d after expiry: %+v, %v (want who and when, no transcript)", id, vm, err)
		}
	}
	if r.fake.HasRecording(recSid(10)) {
		t.Error("Twilio still has voicemail 10's recording after expiry")
	}
	if _, err := r.jobs.Store.ReadAll(ctx, c9.Key, 1<<30); !recordings.IsNotFound(err) {
		t.Errorf("our copy of 9 after expiry: %v, want not found", err)
	}
	if got := r.timeline(10, "recording-expire"); len(got) != 1 || got[0] != postgres.ExpiredByRetention {
		t.Errorf("recording-expire entries %v", got)
	}
	// Again: nothing more.
	if n, _, err := r.jobs.Expire(ctx); err != nil || n != 0 {
		t.Errorf("second expiry: %d, %v; want 0", n, err)
	}
	// Retention 0 keeps forever; the timelines go after 365 days.
	vm11 := r.voicemail(11, `,"voicemail":{"retention_days":0}`)
	r.await("copy_recording")
	r.shift.Store(int64(10 * 365 * 24 * time.Hour))
	n, events, err := r.jobs.Expire(ctx)
	if err != nil || n != 0 || events == 0 {
		t.Fatalf("expiry ten years on: %d voicemails, %d entries, %v; want 0 and some", n, events, err)
	}
	if task := r.task(vm11.ID); task.Audio.ExpiredAt != nil || task.Audio.Copy == nil {
		t.Errorf("retention 0 expired voicemail 11: %+v", task.Audio)
	}
	if got := r.timeline(11, "recording"); len(got) != 0 {
		t.Errorf("timeline entries ten years on: %v, want none", got)
	}
	if _, err := r.db.GetCall(ctx, callSid(11)); err != nil {
		t.Errorf("the call itself must stay: %v", err)
	}
}

// TestExpire_DuringCopy: a voicemail deleted before its copy is saved leaves no copy behind.
func TestExpire_BeforeCopy(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, fileURL(dir))
	if err := r.queue.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	vm := r.voicemail(12, "")
	if _, err := r.db.ExpireVoicemail(context.Background(), vm.ID, postgres.ExpiredByRequest); err != nil {
		t.Fatal(err)
	}
	if err := r.jobs.Purge(context.Background(), vm.ID); err != nil {
		t.Fatal(err)
	}
	if r.fake.HasRecording(recSid(12)) {
		t.Error("Twilio still has the recording of a deleted voicemail")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("store holds %d entries after deletion", len(entries))
	}
}

// TestEmail_AttachesCopy: the email attaches callrelay's copy: here Twilio's is already
// deleted, so the attachment can come from nowhere else.
func TestEmail_AttachesCopy(t *testing.T) {
	r := newRig(t, fileURL(t.TempDir()))
	ctx := context.Background()
	vm := r.voicemail(13, "") // 60 s: the email waits for the transcript
	if ev := r.await("copy_recording"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("copy job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	if r.fake.HasRecording(recSid(13)) {
		t.Fatal("Twilio still has the recording")
	}
	var jobID int64
	if err := r.db.Pool().QueryRow(ctx, `SELECT job_id FROM voicemails WHERE id = $1`, vm.ID).Scan(&jobID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.queue.JobRetry(ctx, jobID); err != nil { // the transcript is late: send now
		t.Fatal(err)
	}
	if ev := r.await("notify_voicemail"); ev.Kind != river.EventKindJobCompleted {
		t.Fatalf("email job: %s (%v)", ev.Kind, ev.Job.Errors)
	}
	files, err := filepath.Glob(filepath.Join(r.mail, "*.eml"))
	if err != nil || len(files) != 1 {
		t.Fatalf("emails: %v, %v", files, err)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	e := mailtest.Parse(t, raw)
	name := fmt.Sprintf("voicemail-%d.mp3", vm.ID)
	if got := e.Attachments[name]; !bytes.Equal(got, r.audio) || e.ContentType[name] != mp3Type {
		t.Errorf("attachment %s: %d bytes, %q; want the copy's %d bytes (attachments %v)", name, len(got), e.ContentType[name], len(r.audio), len(e.Attachments))
	}
}

// TestExpire_LateTranscript: a transcript that arrives after its voicemail was deleted is not
// stored: deleted means deleted.
func TestExpire_LateTranscript(t *testing.T) {
	r := newRig(t, fileURL(t.TempDir()))
	ctx := context.Background()
	vm := r.voicemail(14, "") // 60 s, en-US: the transcript is pending
	if vm.TranscriptStatus != callrelay.TranscriptPending {
		t.Fatalf("transcript status %q, want pending", vm.TranscriptStatus)
	}
	if _, err := r.db.ExpireVoicemail(ctx, vm.ID, postgres.ExpiredByRequest); err != nil {
		t.Fatal(err)
	}
	if err := r.db.RecordTranscription(ctx, callrelay.Transcription{CallSid: callSid(14), RecordingSid: recSid(14),
		TranscriptionSid: "TR14", Status: "completed", Text: "my card number is"}); err != nil {
		t.Fatal(err)
	}
	got, err := r.db.GetVoicemail(ctx, vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Transcript != nil {
		t.Errorf("transcript stored after deletion: %q", *got.Transcript)
	}
	var early int
	if err := r.db.Pool().QueryRow(ctx, `SELECT count(*) FROM early_transcriptions`).Scan(&early); err != nil || early != 0 {
		t.Errorf("early transcriptions: %d, %v; want none", early, err)
	}
}
