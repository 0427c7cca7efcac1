package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// The change feed: ONE poller per replica reads the timeline entries committed since its
// cursor (postgres.DB.EventsAfter), loads the calls and voicemails they touch once, renders
// their fragments once, and fans them out to every browser connected to this replica. Every
// change is a timeline entry whichever replica wrote it, so a change made through replica A
// reaches a browser on replica B within a poll. The poller runs only while a browser is
// connected, and costs one query per poll (two more when something changed), whatever the
// number of browsers; the voice webhook pays nothing (no trigger, no NOTIFY: see
// docs/design.md, "The console's change feed").

// FeedPoll is how often the feed looks for new timeline entries.
const FeedPoll = 250 * time.Millisecond

// feedMaxCalls bounds the calls one poll renders. A poll that finds more changed (a busy hour:
// hundreds of calls a second) renders none: it skips the feed to its end and tells every
// browser to read its page afresh (a "resync", at most one per poll, which the page rate-limits),
// so that the feed's cost stays bounded whatever the call rate, and the webhooks keep theirs.
const feedMaxCalls = 40

// feedBuffer is how many messages a slow browser may be behind before its stream is closed
// (its EventSource reconnects and gets the page's state afresh).
const feedBuffer = 256

// feedHub fans the feed out to the streams of this replica.
type feedHub struct {
	db   *postgres.DB
	tmpl *consoleTemplates
	log  *slog.Logger
	poll time.Duration

	mu      sync.Mutex
	subs    map[chan []feedMessage]struct{}
	stop    context.CancelFunc
	done    chan struct{}
	closed  bool
	closing chan struct{} // closed by Close: every stream ends (server shutdown)
}

func newFeedHub(db *postgres.DB, tmpl *consoleTemplates, log *slog.Logger, poll time.Duration) *feedHub {
	if poll <= 0 {
		poll = FeedPoll
	}
	return &feedHub{db: db, tmpl: tmpl, log: log, poll: poll, subs: map[chan []feedMessage]struct{}{}, closing: make(chan struct{})}
}

// subscribe adds a stream; the first starts the poller. The channel is closed when the stream
// falls too far behind or the hub closes.
func (h *feedHub) subscribe() (chan []feedMessage, func()) {
	ch := make(chan []feedMessage, feedBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	h.subs[ch] = struct{}{}
	if h.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h.stop, h.done = cancel, make(chan struct{})
		go h.run(ctx, h.done)
	}
	return ch, func() { h.unsubscribe(ch) }
}

// streams is how many streams are subscribed.
func (h *feedHub) streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *feedHub) unsubscribe(ch chan []feedMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; !ok {
		return
	}
	delete(h.subs, ch)
	close(ch)
	if len(h.subs) == 0 && h.stop != nil {
		h.stop() // the last browser left: no more polls
		h.stop = nil
	}
}

// Close ends every stream and the poller (server shutdown: streams never go idle by
// themselves, and http.Server.Shutdown waits for idle connections).
func (h *feedHub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.closing)
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
	stop, done := h.stop, h.done
	h.stop = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

func (h *feedHub) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	var cur postgres.FeedCursor
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		h.step(ctx, &cur)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// step reads what changed since cur and sends it: the rendered calls, or a resync when more
// than feedMaxCalls changed.
func (h *feedHub) step(ctx context.Context, cur *postgres.FeedCursor) {
	entries, err := h.db.EventsAfter(ctx, cur)
	if err != nil && ctx.Err() == nil {
		h.log.Warn("console feed", slog.String("error", err.Error()))
	}
	switch {
	case changedCalls(entries) > feedMaxCalls:
		if err := h.db.SkipFeed(ctx, cur); err != nil && ctx.Err() == nil {
			h.log.Warn("console feed", slog.String("error", err.Error()))
		}
		h.send([]feedMessage{{Kind: "resync"}})
	case len(entries) > 0:
		h.publish(ctx, entries)
	}
}

// changedCalls is how many calls the entries touch.
func changedCalls(entries []postgres.FeedEntry) int {
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.CallSid] = true
	}
	return len(seen)
}

// publish renders what the entries changed, once, and hands it to every stream.
func (h *feedHub) publish(ctx context.Context, entries []postgres.FeedEntry) {
	seen := map[string]bool{}
	var sids []string
	vmChanged := false
	for _, e := range entries {
		if !seen[e.CallSid] {
			seen[e.CallSid] = true
			sids = append(sids, e.CallSid)
		}
		if strings.HasPrefix(e.Type, "voicemail") || strings.HasPrefix(e.Type, "recording") {
			vmChanged = true
		}
	}
	var msgs []feedMessage
	calls, err := h.db.CallsBySid(ctx, sids)
	if err != nil {
		h.log.Warn("console feed: calls", slog.String("error", err.Error()))
		return
	}
	for _, c := range calls {
		live := c.EndedAt == nil && !callrelay.IsTerminal(c.Status)
		if html, err := h.tmpl.fragment("call", callRow{Call: c, Live: live, CSRF: csrfMark}); err == nil {
			msgs = append(msgs, feedMessage{Kind: "call", ID: "call-" + c.CallSid, Live: live, HTML: html})
		}
		if html, err := h.tmpl.fragment("timeline", c); err == nil {
			msgs = append(msgs, feedMessage{Kind: "timeline", ID: "timeline-" + c.CallSid, HTML: html})
		}
	}
	if vmChanged {
		vms, err := h.db.ListConsoleVoicemails(ctx, callrelay.ConsoleVoicemailFilter{CallSids: sids, Limit: postgres.MaxListLimit})
		if err != nil {
			h.log.Warn("console feed: voicemails", slog.String("error", err.Error()))
		}
		for _, vm := range vms {
			if html, err := h.tmpl.fragment("vm", vmRow{VM: vm, Base: "/console", CSRF: csrfMark, Ops: true}); err == nil {
				msgs = append(msgs, feedMessage{Kind: "vm", ID: "vm-" + itoa64(vm.ID), HTML: html})
			}
		}
	}
	if len(msgs) > 0 {
		h.send(msgs)
	}
}

// send hands msgs to every stream.
func (h *feedHub) send(msgs []feedMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- msgs:
		default:
			// Too far behind: end its stream; the browser reconnects.
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// StreamBeat is how often an open console stream beats, which keeps proxies from closing a
// quiet one, and checks that its session still lives: a logout elsewhere ends it within that.
const StreamBeat = 15 * time.Second

// sseWriteWait bounds each write to a browser: one that stops reading is dropped.
const sseWriteWait = 10 * time.Second

// handleConsoleEvents streams the feed to one browser as server-sent events.
func (c *console) handleConsoleEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := sessionOf(r.Context())
		rc := http.NewResponseController(w)
		ch, unsubscribe := c.hub.subscribe()
		defer unsubscribe()
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		write := func(b string) bool {
			_ = rc.SetWriteDeadline(callrelay.Deadline(sseWriteWait))
			if _, err := w.Write([]byte(b)); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		if !write("retry: 2000\n: connected\n\n") {
			return
		}
		beat := time.NewTicker(c.beat)
		defer beat.Stop()
		// The session's end ends the stream; the browser's reconnection then needs a login.
		end := time.NewTimer(max(s.expiry.Sub(c.now()), 0))
		defer end.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-end.C:
				return
			case <-beat.C:
				// Logged out (on any replica): the stream ends, and the browser's reconnection
				// meets the login. A store that fails keeps the stream (the session may live).
				if _, err := c.db.GetSession(r.Context(), s.idHash); callrelay.ErrorCode(err) == callrelay.EUNAUTHORIZED {
					return
				}
				if !write(": beat\n\n") {
					return
				}
			case msgs, ok := <-ch:
				if !ok {
					return
				}
				var b strings.Builder
				for _, m := range msgs {
					m.HTML = strings.ReplaceAll(m.HTML, csrfMark, s.csrf)
					b.WriteString("event: change\ndata: ")
					b.Write(m.encode())
					b.WriteString("\n\n")
				}
				if !write(b.String()) {
					return
				}
			}
		}
	})
}
