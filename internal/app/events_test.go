package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/twiliosim"
)

const eventSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks test vectors' key

// TestEvents plays a voicemail and a missed call through a whole callrelay configured with an
// instance-wide endpoint: the receiver, verifying each request with the Standard Webhooks
// library, gets voicemail.created, voicemail.transcribed and call.missed, once each.
func TestEvents(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook(eventSecret)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		id, typ string
		err     error
	}
	arrived := make(chan got, 16)
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e struct {
			Type string `json:"type"`
		}
		err := wh.VerifyIgnoringTimestamp(body, r.Header) // the test clock may be shifted (clocktest)
		if err == nil {
			err = json.Unmarshal(body, &e)
		}
		arrived <- got{id: r.Header.Get("webhook-id"), typ: e.Type, err: err}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	r := startRelay(t, func(c *config.Config, o *app.Options) {
		c.EventWebhooks, c.EventSecret, c.EventAllowPrivate = []string{recv.URL + "/events"}, eventSecret, true
		o.EventRootCAs = recv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	})
	for _, name := range []string{"voicemail-transcribed", "caller-hangs-up-ringing"} {
		sc, err := twiliosim.LoadScenario(filepath.Join("../../testdata/scenarios", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if res := playScenario(t, r, sc, 15*time.Second); !res.OK() {
			t.Fatalf("%s: %v", name, res.Failures)
		}
	}
	seen := map[string]string{}
	for len(seen) < 3 {
		select {
		case g := <-arrived:
			if g.err != nil {
				t.Fatalf("event %s refused: %v", g.typ, g.err)
			}
			if id, dup := seen[g.typ]; dup {
				t.Fatalf("%s delivered twice (%s, %s)", g.typ, id, g.id)
			}
			seen[g.typ] = g.id
		case <-time.After(15 * time.Second):
			t.Fatalf("events received %v, want voicemail.created, voicemail.transcribed, call.missed", seen)
		}
	}
	for _, typ := range []string{"voicemail.created", "voicemail.transcribed", "call.missed"} {
		if seen[typ] == "" {
			t.Errorf("no %s among %v", typ, seen)
		}
	}
}
