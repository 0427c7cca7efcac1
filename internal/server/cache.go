package server

import (
	"sync"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// routingCache remembers recently seen routings so that a call still gets forwarded while the
// database is unreachable. It is a fallback, never read while the database answers: another
// replica may have changed a number since.
type routingCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.RWMutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	routing callrelay.Routing
	stored  time.Time
}

func newRoutingCache(ttl time.Duration, max int, now func() time.Time) *routingCache {
	return &routingCache{ttl: ttl, max: max, now: now, entries: make(map[string]cacheEntry)}
}

func (c *routingCache) put(number string, r callrelay.Routing) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		if _, ok := c.entries[number]; !ok {
			// Bounded memory: drop expired entries, and everything if that is not enough.
			for k, e := range c.entries {
				if now.Sub(e.stored) > c.ttl {
					delete(c.entries, k)
				}
			}
			if len(c.entries) >= c.max {
				clear(c.entries)
			}
		}
	}
	c.entries[number] = cacheEntry{routing: r, stored: now}
}

func (c *routingCache) get(number string) (callrelay.Routing, bool) {
	c.mu.RLock()
	e, ok := c.entries[number]
	c.mu.RUnlock()
	if !ok || c.now().Sub(e.stored) > c.ttl {
		return callrelay.Routing{}, false
	}
	return e.routing, true
}

func (c *routingCache) remove(number string) {
	c.mu.Lock()
	delete(c.entries, number)
	c.mu.Unlock()
}
