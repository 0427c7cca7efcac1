// Package app assembles callrelay from its parts (the store, the job queue, mail,
// Twilio's REST client, the conference service and the HTTP handler) for `callrelay serve`
// and for the end-to-end tests, which run the whole server against the Twilio simulator.
package app

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/events"
	"github.com/callrelay/callrelay/internal/hold"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/recordings"
	"github.com/callrelay/callrelay/internal/server"
	"github.com/callrelay/callrelay/internal/spool"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiml"
	"github.com/callrelay/callrelay/internal/voicemail"
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
	// SpoolInterval is how often spooled callbacks are retried (DefaultSpoolInterval when zero).
	SpoolInterval time.Duration
	// Now is the clock every part runs on (callrelay.SystemClock when nil). Tests pass a
	// running clock (clocktest.Now) to run the whole server at another date.
	Now func() time.Time
	// MissedCallDelay is how long after its end an unanswered call is judged
	// (CALLRELAY_MISSED_CALL_DELAY when zero).
	MissedCallDelay time.Duration
	// EventRootCAs, when set, are the only certificates event endpoints are trusted by (tests).
	EventRootCAs *x509.CertPool
}

// DefaultSpoolInterval: how often a replica tries to replay its spooled callbacks.
const DefaultSpoolInterval = time.Second

// App is callrelay, assembled: serve Handler, Start the background work, Shutdown at the end.
type App struct {
	Handler http.Handler
	DB      *postgres.DB
	// Streams ends the console's event streams; Serve closes them when it shuts down.
	Streams *server.Streams

	log    *slog.Logger
	now    func() time.Time
	queue  *river.Client[pgx.Tx]
	conf   *conference.Service
	holds  *hold.Service
	spool  *spool.Spool      // nil when CALLRELAY_SPOOL_DIR is empty
	store  *recordings.Store // nil when CALLRELAY_RECORDINGS_URL is empty
	replay *spool.Replayer

	stopReplay context.CancelFunc
	replayDone chan struct{}
}

// New assembles callrelay on a migrated database. Each part is built once, after what it
// needs: the clients (mail, Twilio, the recording store), the store (with an insert-only job
// client), the services on the store, the queue that works the jobs (its workers are those
// services), and last the HTTP handler.
func New(cfg config.Config, pool *pgxpool.Pool, log *slog.Logger, opts Options) (*App, error) {
	now := opts.Now
	if now == nil {
		now = callrelay.SystemClock
	}
	media := recording.NewFetcher(cfg.TwilioAPIURL.URL, cfg.TwilioAccountSID, cfg.TwilioAuthToken.Value(), nil)
	links := recording.NewLinks(cfg.PublicURL.URL, recording.ParseSecrets(cfg.LinkSecret.Value()), recording.DefaultTTL, now)
	sender, err := mail.New(cfg.SMTPURL.Value(), cfg.MailDir, mail.DefaultTimeout)
	if err != nil {
		return nil, fmt.Errorf("config: SMTP_URL: %w", err)
	}
	log.Info("mail", slog.String("sender", fmt.Sprint(sender)))

	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.TwilioAccountSID == "" {
		log.Warn("TWILIO_ACCOUNT_SID is not set: conference mode and hold cannot use Twilio's REST API")
	}
	rest := twilioapi.New(twilioapi.Config{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken.Value(),
		BaseURL: cfg.TwilioAPIURL.URL, ParticipantInterval: opts.ParticipantInterval, Now: now})
	store, err := openRecordings(cfg, log)
	if err != nil {
		return nil, err
	}
	notice, signer, err := notices(cfg, log, opts)
	if err != nil {
		return nil, err
	}
	// The queue runs on the database's clock unless a test gave one (see QueueOptions.Now);
	// the store's inserts share it.
	jobs, err := postgres.NewJobs(pool, opts.Now)
	if err != nil {
		return nil, err
	}
	db := postgres.New(pool, postgres.Options{Now: now, Jobs: jobs, Notices: notice, CopyRecordings: store != nil})

	recs := &recordings.Jobs{DB: db, Store: store, Media: media, Twilio: rest, Now: now, Log: log,
		RetentionDays: cfg.RetentionDays, TimelineRetentionDays: cfg.TimelineRetentionDays}
	urls := twiml.NewBuilder(cfg.PublicURL.URL)
	conf := conference.New(db, rest, urls, log)
	holds := hold.New(db, rest, urls, cfg.HoldMusicURL.String(), log)
	notifier := voicemail.NewNotifier(db, sender, media, links, cfg.MailFrom, now, log)
	notifier.Zone = cfg.TimeZone.Location
	notifier.StoredAudio = recs.StoredAudio
	// The queue works the voicemail emails, the missed-call checks and events, the conference
	// jobs (dialling the owner, the deadline) and the recordings' copies and expiry.
	workers := []func(*river.Workers) error{recs.Register}
	if signer != nil {
		d := events.NewDeliverer(db, signer, events.Options{AllowPrivate: cfg.EventAllowPrivate, RootCAs: opts.EventRootCAs, Now: now, Log: log})
		workers = append(workers, d.Register)
	}
	queue, err := voicemail.NewQueue(pool, notifier,
		voicemail.QueueOptions{Logger: log, FetchPollInterval: opts.JobPollInterval, Now: opts.Now, Register: conf.Register,
			PeriodicJobs: recs.PeriodicJobs()}, workers...)
	if err != nil {
		return nil, err
	}
	var sp *spool.Spool
	if cfg.SpoolDir != "" {
		if sp, err = spool.Open(cfg.SpoolDir); err != nil {
			return nil, fmt.Errorf("config: CALLRELAY_SPOOL_DIR: %w", err)
		}
		log.Info("spool", slog.String("dir", cfg.SpoolDir), slog.Int("waiting", sp.Len()))
	} else {
		log.Warn("CALLRELAY_SPOOL_DIR is empty: callbacks that arrive while the database is down are refused (503)")
	}
	streams := &server.Streams{}
	handler := server.NewServer(server.Deps{Logger: log, Config: cfg, DB: db, Registry: reg, Media: media, Links: links,
		Conference: conf, Hold: holds, Spool: sp, Now: now, Recordings: store, PurgeRecording: recs.Purge, Streams: streams})
	a := &App{Handler: handler, DB: db, log: log, now: now, queue: queue, conf: conf, holds: holds, spool: sp, store: store, Streams: streams}
	if sp != nil {
		a.replay = &spool.Replayer{Spool: sp, Handler: handler, Log: log, Interval: cmp.Or(opts.SpoolInterval, DefaultSpoolInterval)}
	}
	return a, nil
}

// Start starts the job queue (voicemail emails; the conference jobs that dial the owner and
// keep each call's deadline). It runs until Shutdown, not until ctx ends: webhooks
// still in flight when a shutdown begins may enqueue jobs.
func (a *App) Start(ctx context.Context) error {
	if err := a.queue.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}
	if a.replay != nil {
		var rctx context.Context
		rctx, a.stopReplay = context.WithCancel(context.WithoutCancel(ctx))
		a.replayDone = make(chan struct{})
		go func() {
			defer close(a.replayDone)
			a.replay.Run(rctx)
		}()
	}
	return nil
}

// Shutdown finishes the background work, after the HTTP server has stopped taking requests:
// legs being ended (a caller must not be left waiting), then running jobs, owners being
// dialled among them (finished, or cancelled and handed back to the queue for another replica).
func (a *App) Shutdown(ctx context.Context) error {
	if a.stopReplay != nil {
		// What is left stays on disk for the next start.
		a.stopReplay()
		<-a.replayDone
	}
	if a.spool != nil {
		defer a.spool.Close()
	}
	if err := a.conf.Shutdown(ctx); err != nil {
		a.log.Warn("conference work", slog.String("error", err.Error()))
	}
	if err := a.holds.Shutdown(ctx); err != nil {
		a.log.Warn("hold work", slog.String("error", err.Error()))
	}
	if err := a.queue.Stop(ctx); err != nil {
		return fmt.Errorf("job queue stop: %w", err)
	}
	if a.store != nil {
		return a.store.Close() // after the jobs that use it
	}
	return nil
}

// openRecordings opens the recording store; nil without CALLRELAY_RECORDINGS_URL: the audio
// then stays at Twilio, and retention still deletes it there.
func openRecordings(cfg config.Config, log *slog.Logger) (*recordings.Store, error) {
	if cfg.RecordingsURL == "" {
		log.Warn("CALLRELAY_RECORDINGS_URL is empty: recordings stay at Twilio and are streamed from there")
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := recordings.Open(ctx, cfg.RecordingsURL)
	if err != nil {
		return nil, fmt.Errorf("config: CALLRELAY_RECORDINGS_URL: %w", err)
	}
	log.Info("recordings", slog.String("store", store.String()), slog.Int("retention_days", cfg.RetentionDays),
		slog.Int("timeline_retention_days", cfg.TimelineRetentionDays))
	return store, nil
}
