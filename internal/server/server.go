// Package server is callrelay's HTTP surface: Twilio's signed webhooks, the ops API, health
// and metrics. Every route is in routes.go.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/hold"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/recordings"
	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/internal/spool"
	"github.com/callrelay/callrelay/internal/twiml"
)

// Routing cache for webhooks answered while the database is down (see routingCache).
const (
	cacheTTL     = 10 * time.Minute
	cacheEntries = 10000
)

// Deps are what the server needs from outside.
type Deps struct {
	Logger   *slog.Logger
	Config   config.Config
	DB       *postgres.DB
	Registry *prometheus.Registry // metrics are registered and served from it
	Media    *recording.Fetcher   // recordings, fetched from Twilio with the account's credentials
	Links    *recording.Links     // the signed audio links in voicemail emails
	// AudioStall cuts an audio stream that makes no progress this long (a client that stops
	// reading, a stalled download from Twilio); 0 means DefaultAudioStall.
	AudioStall time.Duration
	// Conference runs conference-mode calls (REST requests to Twilio).
	Conference *conference.Service
	// Hold holds and resumes parties, in both modes, and ends held direct-mode calls.
	Hold *hold.Service
	// Spool keeps callbacks that arrive while the database is down (nil: they answer 503).
	Spool *spool.Spool
	// Now is the clock (callrelay.SystemClock when nil).
	Now func() time.Time
	// Recordings is callrelay's recording store: the audio endpoints serve its copy when there
	// is one (nil: no store, every play streams from Twilio).
	Recordings *recordings.Store
	// PurgeRecording deletes an expired voicemail's audio now (recordings.Jobs.Purge), for
	// DELETE /api/voicemails/{id}; nil leaves it to the queued purge job.
	PurgeRecording func(ctx context.Context, voicemailID int64) error
	// Streams, when set, ends the console's event streams at shutdown (Streams.Close, given to
	// http.Server.RegisterOnShutdown).
	Streams *Streams
	// FeedPoll is how often the console's change feed polls (0: FeedPoll).
	FeedPoll time.Duration
	// StreamBeat is how often an open console stream beats and checks that its session still
	// lives (0: StreamBeat).
	StreamBeat time.Duration
}

// NewServer returns callrelay's HTTP handler.
func NewServer(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = callrelay.SystemClock
	}
	b := twiml.NewBuilder(d.Config.PublicURL.URL)
	m := newMetrics(d.Registry)
	if d.Spool != nil {
		d.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "callrelay_spool_entries",
			Help: "Callbacks spooled while the database was unreachable, waiting to be replayed.",
		}, func() float64 { return float64(d.Spool.Len()) }))
	}
	mux := chi.NewRouter()
	mux.Use(withRequest(d.Logger, m, d.Now), recoverPanics)
	addRoutes(mux, d, m, b,
		signature.NewValidator(d.Config.TwilioAuthToken.Value(), d.Config.PublicURL.URL),
		newRoutingCache(cacheTTL, cacheEntries, d.Now))
	return mux
}
