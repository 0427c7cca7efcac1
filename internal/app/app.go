// Package app assembles callrelay from its parts (the store, the voicemail job queue, mail,
// Twilio's REST client, the conference service and the HTTP handler) for `callrelay serve`
// and for the end-to-end tests, which run the whole server against the Twilio simulator.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/server"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/voicemail"
	"github.com/callrelay/callrelay/twiml"
)

// Options are the settings that are not configuration: production leaves them zero; tests
// that run time faster scale them.
type Options struct {
	// ParticipantInterval spaces CreateParticipant requests (twilioapi's default when zero).
	ParticipantInterval time.Duration
	// JobPollInterval is how often the voicemail queue looks for due jobs (River's default
	// when zero).
	JobPollInterval time.Duration
	// Registry collects the metrics (a new one with Go and process collectors when nil).
	Registry *prometheus.Registry
}

// App is callrelay, assembled: serve Handler, Start the background work, Shutdown at the end.
type App struct {
	Handler http.Handler
	DB      *postgres.DB

	log   *slog.Logger
	queue *river.Client[pgx.Tx]
	conf  *conference.Service
}

// New assembles callrelay on a migrated database.
func New(cfg config.Config, pool *pgxpool.Pool, log *slog.Logger, opts Options) (*App, error) {
	db := postgres.New(pool)
	media := recording.NewFetcher(cfg.TwilioAPIURL.URL, cfg.TwilioAccountSID, cfg.TwilioAuthToken.Value(), nil)
	links := recording.NewLinks(cfg.PublicURL.URL, recording.ParseSecrets(cfg.LinkSecret.Value()), recording.DefaultTTL, time.Now)
	sender, err := mail.New(cfg.SMTPURL.Value(), cfg.MailDir, mail.DefaultTimeout)
	if err != nil {
		return nil, fmt.Errorf("config: SMTP_URL: %w", err)
	}
	log.Info("mail", slog.String("sender", fmt.Sprint(sender)))
	queue, err := voicemail.NewQueue(pool, voicemail.NewNotifier(db, sender, media, links, cfg.MailFrom, log),
		voicemail.QueueOptions{Logger: log, FetchPollInterval: opts.JobPollInterval})
	if err != nil {
		return nil, err
	}
	db.Jobs = queue

	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.TwilioAccountSID == "" {
		log.Warn("TWILIO_ACCOUNT_SID is not set: conference mode and hold cannot use Twilio's REST API")
	}
	rest := twilioapi.New(twilioapi.Config{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken.Value(),
		BaseURL: cfg.TwilioAPIURL.URL, ParticipantInterval: opts.ParticipantInterval})
	conf := conference.New(db, rest, twiml.NewBuilder(cfg.PublicURL.URL), cfg.HoldMusicURL.String(), log)
	handler := server.NewServer(server.Deps{Logger: log, Config: cfg, DB: db, Registry: reg, Media: media, Links: links, Conference: conf})
	return &App{Handler: handler, DB: db, log: log, queue: queue, conf: conf}, nil
}

// Start starts the voicemail job queue. It runs until Shutdown, not until ctx ends: webhooks
// still in flight when a shutdown begins may enqueue jobs.
func (a *App) Start(ctx context.Context) error {
	if err := a.queue.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}
	return nil
}

// Shutdown finishes the background work, after the HTTP server has stopped taking requests:
// participants being added and legs being ended (a caller must not be left waiting), then
// running jobs (finished, or cancelled and handed back to the queue for another replica).
func (a *App) Shutdown(ctx context.Context) error {
	if err := a.conf.Shutdown(ctx); err != nil {
		a.log.Warn("conference work", slog.String("error", err.Error()))
	}
	if err := a.queue.Stop(ctx); err != nil {
		return fmt.Errorf("job queue stop: %w", err)
	}
	return nil
}
