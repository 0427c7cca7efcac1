package app_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/twiliosim"
)

// TestScenario_RecordingStore: the whole callrelay with CALLRELAY_RECORDINGS_URL on a folder,
// against the simulator: a voicemail's recording is copied into the folder, verified, deleted
// at Twilio (the simulator then answers 404 for its media), and still plays, with Range, from
// callrelay's copy.
func TestScenario_RecordingStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "recordings")
	r := startRelay(t, func(cfg *config.Config, _ *app.Options) {
		cfg.RecordingsURL = "file://" + filepath.ToSlash(dir)
		cfg.RetentionDays, cfg.TimelineRetentionDays = 90, 365
	})
	a, logs := r.app, r.logs

	sc, err := twiliosim.LoadScenario("../../testdata/scenarios/voicemail-transcribed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := playScenario(t, r, sc, 15*time.Second)
	if !res.OK() {
		t.Fatalf("scenario failed:\n%s", logs.String())
	}
	ctx := context.Background()
	vms, err := a.DB.ListVoicemails(ctx, callrelay.VoicemailFilter{Limit: 10})
	if err != nil || len(vms) != 1 {
		t.Fatalf("voicemails: %d, %v", len(vms), err)
	}
	vm := vms[0]
	// The copy job runs in the app's own queue, which a test cannot subscribe to: look, at a
	// short interval and within a bound, until Twilio's copy is reported deleted.
	var audio callrelay.StoredAudio
	for deadline := time.Now().Add(15 * time.Second); ; {
		if audio, err = a.DB.AudioState(ctx, vm.ID); err != nil {
			t.Fatal(err)
		}
		if audio.TwilioDeletedAt != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if audio.Copy == nil || audio.TwilioDeletedAt == nil {
		t.Fatalf("after 15 s: copy %+v, twilio_deleted_at %v\n%s", audio.Copy, audio.TwilioDeletedAt, logs.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, "voicemail", vm.RecordingSid+".mp3"))
	if err != nil || int64(len(data)) != audio.Copy.Size || audio.Copy.ContentType != "audio/mpeg" {
		t.Fatalf("copy on disk: %d bytes (%v), recorded %+v", len(data), err, audio.Copy)
	}
	// Twilio's media is gone: what plays is the copy.
	req, _ := http.NewRequest(http.MethodGet, vm.RecordingURL+".mp3", nil)
	req.SetBasicAuth(accountSID, authToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("Twilio's media after deletion: %v %v, want 404", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	req, _ = http.NewRequest(http.MethodGet, r.url+"/api/voicemails/"+itoa(vm.ID)+"/audio", nil)
	req.Header.Set("Authorization", "Bearer "+opsToken)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != "bytes 10-19/"+itoa(int64(len(data))) {
		t.Errorf("Range from the copy: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
