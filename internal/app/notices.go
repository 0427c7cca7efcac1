package app

import (
	"cmp"
	"fmt"
	"log/slog"

	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/events"
	"github.com/callrelay/callrelay/internal/postgres"
)

// notices are what the store writes when calls end (missed-call checks, events), and the
// signer of those events (nil: events off).
func notices(cfg config.Config, log *slog.Logger, opts Options) (postgres.Notices, *events.Signer, error) {
	n := postgres.Notices{MissedCallDelay: cmp.Or(opts.MissedCallDelay, cfg.MissedCallDelay)}
	if cfg.EventSecret == "" {
		log.Info("events: off (CALLRELAY_EVENT_SECRET is not set): numbers' notify.webhooks are ignored")
		return n, nil, nil
	}
	signer, err := events.ParseSecret(cfg.EventSecret.Value())
	if err != nil {
		return n, nil, fmt.Errorf("config: CALLRELAY_EVENT_SECRET: %w", err)
	}
	n.Events, n.Endpoints = true, cfg.EventWebhooks
	if cfg.EventAllowPrivate {
		log.Warn("events: CALLRELAY_EVENT_ALLOW_PRIVATE=true: endpoints on loopback, private and link-local addresses are reached")
	}
	log.Info("events", slog.Int("instance_endpoints", len(cfg.EventWebhooks)))
	return n, signer, nil
}
