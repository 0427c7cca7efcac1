package app

import (
	"cmp"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/events"
	"github.com/callrelay/callrelay/internal/postgres"
)

// noticeWorkers sets up what the store writes when calls end and returns the queue's extra
// workers (event delivery; missed-call emails come with voicemail.NewQueue).
func noticeWorkers(cfg config.Config, db *postgres.DB, log *slog.Logger, opts Options, now func() time.Time) ([]func(*river.Workers) error, error) {
	db.Notices = postgres.Notices{MissedCallDelay: cmp.Or(opts.MissedCallDelay, cfg.MissedCallDelay)}
	var workers []func(*river.Workers) error
	if cfg.EventSecret == "" {
		log.Info("events: off (CALLRELAY_EVENT_SECRET is not set): numbers' notify.webhooks are ignored")
		return workers, nil
	}
	signer, err := events.ParseSecret(cfg.EventSecret.Value())
	if err != nil {
		return nil, fmt.Errorf("config: CALLRELAY_EVENT_SECRET: %w", err)
	}
	db.Notices.Events, db.Notices.Endpoints = true, cfg.EventWebhooks
	if cfg.EventAllowPrivate {
		log.Warn("events: CALLRELAY_EVENT_ALLOW_PRIVATE=true: endpoints on loopback, private and link-local addresses are reached")
	}
	log.Info("events", slog.Int("instance_endpoints", len(cfg.EventWebhooks)))
	d := events.NewDeliverer(db, signer, events.Options{AllowPrivate: cfg.EventAllowPrivate, RootCAs: opts.EventRootCAs, Now: now, Log: log})
	return append(workers, d.Register), nil
}
