package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/events"
)

// MaxEventWebhooks bounds CALLRELAY_EVENT_WEBHOOKS.
const MaxEventWebhooks = 10

func (c *Config) validateEvents() error {
	var hooks []string
	for _, u := range c.EventWebhooks {
		if u = strings.TrimSpace(u); u != "" && !slices.Contains(hooks, u) {
			hooks = append(hooks, u)
		}
	}
	c.EventWebhooks = hooks
	if len(hooks) > MaxEventWebhooks {
		return fmt.Errorf("config: CALLRELAY_EVENT_WEBHOOKS: at most %d endpoints", MaxEventWebhooks)
	}
	for i, u := range hooks {
		if err := callrelay.ValidWebhookURL(fmt.Sprintf("endpoint %d", i+1), u); err != nil {
			return fmt.Errorf("config: CALLRELAY_EVENT_WEBHOOKS: %s", callrelay.ErrorMessage(err))
		}
	}
	if c.EventSecret == "" {
		if len(hooks) > 0 {
			return errors.New("config: CALLRELAY_EVENT_SECRET: required with CALLRELAY_EVENT_WEBHOOKS (whsec_ and a base64 key of 24 to 64 bytes)")
		}
		return nil
	}
	if _, err := events.ParseSecret(c.EventSecret.Value()); err != nil {
		return fmt.Errorf("config: CALLRELAY_EVENT_SECRET: %v", err)
	}
	return nil
}
