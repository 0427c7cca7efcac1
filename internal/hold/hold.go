// Package hold holds and resumes either party of a connected call through Twilio's REST API: in
// conference mode with the Conference Participant API (UpdateParticipant), in direct mode by
// redirecting one leg between per-call queues and a waiting loop (UpdateCall). It also ends a
// direct-mode call that went through a hold when a party hangs up, since the call's original
// <Dial> no longer does.
//
// A request records its intent, asks Twilio with no transaction open and no lock that a webhook
// waits on, then records the outcome (docs/design.md "Hold and resume"). The REST requests that
// end a held call run in the background (the webhook that causes them is answered first),
// tracked so that shutdown and tests can wait for them.
package hold

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/callrelay/callrelay/internal/background"
	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiml"
)

// REST is the part of Twilio's REST API hold uses (*twilioapi.Client).
type REST interface {
	Hold(ctx context.Context, conferenceSid, callSid string, hold bool, holdURL, holdMethod string) error
	Redirect(ctx context.Context, callSid, url, statusCallback string) error
	DeleteQueue(ctx context.Context, queueSid string) error
	EndCall(ctx context.Context, callSid, status string) error
}

// Timeout bounds a hold request: waiting for another request of the same call, and Twilio's
// answer. The outcome is recorded even after it (within bookkeepingTimeout).
const Timeout = 15 * time.Second

const (
	// bookkeepingTimeout bounds the writes that record what a REST request did.
	bookkeepingTimeout = 10 * time.Second
	// intentTTL is how long a hold's intent keeps the call's other requests waiting: longer
	// than a request can last, so that only one whose replica died is left to expire.
	intentTTL = Timeout + bookkeepingTimeout + 5*time.Second
	// taskTimeout bounds the background work that ends a held call.
	taskTimeout = 2 * time.Minute
)

// Service holds and resumes parties. Its zero value is not usable: use New.
type Service struct {
	db           callrelay.HoldStore
	rest         REST
	urls         *twiml.Builder
	holdMusicURL string
	log          *slog.Logger

	tasks *background.Group
}

// New returns a Service. holdMusicURL is CALLRELAY_HOLD_MUSIC_URL ("" for callrelay's own).
func New(db callrelay.HoldStore, rest REST, urls *twiml.Builder, holdMusicURL string, log *slog.Logger) *Service {
	return &Service{db: db, rest: rest, urls: urls, holdMusicURL: holdMusicURL, log: log,
		tasks: &background.Group{Timeout: taskTimeout}}
}

// Hold holds or resumes a party of a call and returns the call as it is after. A party already
// in the asked state is left alone; one that is not connected is ECONFLICT; Twilio failing is
// EUPSTREAM, and the hold state is then left as it was. Requests for one call are applied one
// after the other: a request that finds another waiting for Twilio waits for its outcome (ops
// wait for ops; no webhook waits for either), and gives up with ECONFLICT when ctx ends first.
func (s *Service) Hold(ctx context.Context, req callrelay.HoldRequest) (*callrelay.Call, error) {
	for {
		start, err := s.db.RecordHoldIntent(ctx, req, intentTTL)
		switch {
		case err != nil:
			return nil, err
		case start.Intent != nil:
			return s.apply(ctx, *start.Intent)
		case start.Pending.IsZero():
			return s.db.GetCall(ctx, req.CallSid) // unchanged
		}
		if err := s.db.AwaitHoldOutcome(ctx, req.CallSid, start.Pending); err != nil {
			if ctx.Err() != nil {
				return nil, callrelay.Errorf(callrelay.ECONFLICT, "Another hold request for call %s is still waiting for Twilio; try again.", req.CallSid)
			}
			return nil, err
		}
	}
}

// apply asks Twilio for an intent's change, then records the outcome.
func (s *Service) apply(ctx context.Context, in callrelay.HoldIntent) (*callrelay.Call, error) {
	req := in.Request
	err := s.ask(ctx, in)
	// The outcome is recorded even when the request ran out of time: until then the intent
	// keeps the call's other requests waiting.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	res, rerr := s.db.RecordHoldOutcome(bctx, in, callrelay.HoldAttempt{Err: err, Refused: twilioapi.IsRefused(err)})
	if rerr != nil {
		return nil, rerr
	}
	log := s.log.With(slog.String("call_sid", req.CallSid), slog.String("party", req.Party))
	if res.ConfirmedBy != "" {
		log.Warn(req.Kind()+": Twilio's answer was lost, but the leg moved", slog.String("confirmed_by", res.ConfirmedBy),
			slog.Any("error", err))
	}
	if res.Finish {
		log.Info(req.Kind() + ": the call is over; ending what is left of it")
		s.FinishHeld(req.CallSid, "", req.Kind()+" of a call that ended", "")
	}
	if !res.Applied {
		if err == nil {
			return nil, fmt.Errorf("%s %s of %s: not applied", req.Kind(), req.Party, req.CallSid)
		}
		return nil, err
	}
	return s.db.GetCall(bctx, req.CallSid)
}

// ask makes the one REST request an intent needs: UpdateParticipant in conference mode, one
// UpdateCall redirect in direct mode (callrelay.PlanDirectHold).
func (s *Service) ask(ctx context.Context, in callrelay.HoldIntent) error {
	t, req := in.Target, in.Request
	if t.Mode != callrelay.ModeDirect {
		holdURL := s.holdMusicURL
		if holdURL == "" {
			holdURL = s.urls.HoldMusicURL()
		}
		return s.rest.Hold(ctx, t.ConferenceSid, t.CallSid, req.Hold, holdURL, twiml.HoldMethod)
	}
	m := callrelay.PlanDirectHold(req, t)
	leg := t.CallerSid
	if m.Party == callrelay.PartyCallee {
		leg = t.CalleeSid
	}
	var url string
	switch m.To {
	case callrelay.MoveWait:
		url = s.urls.HoldWaitURL(t.CallerSid, m.Party)
	case callrelay.MoveEnqueue:
		url = s.urls.HoldEnqueueURL(t.CallerSid, m.Party)
	default:
		url = s.urls.HoldResumeURL(t.CallerSid, m.Party, req.Party)
	}
	// A redirected leg keeps no Dial whose action would tell callrelay that it hung up: ask
	// Twilio to say so.
	return s.rest.Redirect(ctx, leg, url, s.urls.LegStatusURL(t.CallerSid))
}

// CallerEnded finishes a direct-mode call that went through a hold, whose caller's own status
// callback says it has ended: nothing else will hang up the callee's leg.
func (s *Service) CallerEnded(callSid, status string) {
	s.FinishHeld(callSid, callSid, "caller "+status, "")
}

// LegProgress finishes a held direct-mode call whose callee's leg has ended (p, as the store
// recorded it: res): nothing else will hang up the caller.
func (s *Service) LegProgress(p callrelay.LegProgress, res callrelay.LegResult) {
	if res.Mode == callrelay.ModeDirect && res.Held && callrelay.IsTerminal(p.Status) {
		s.FinishHeld(p.ParentCallSid, p.CallSid, "callee's leg "+p.Status, "")
	}
}

// FinishHeld ends a direct-mode call that went through a hold, in the background (a webhook
// answers at once): its original Dial is over, so nothing else will hang up the party left
// behind. gone is the leg that has hung up (or hangs up by the webhook's answer); queueSid,
// when known, is a queue to delete too. A call never held is left alone.
func (s *Service) FinishHeld(callSid, gone, reason, queueSid string) {
	s.tasks.Go(func(ctx context.Context) {
		end, err := s.db.FinishHeldCall(ctx, callSid, gone, reason)
		if err != nil {
			s.log.Error("direct hold: finish call", slog.String("call_sid", callSid), slog.String("error", err.Error()))
			return
		}
		if queueSid != "" {
			end.Queues = append(end.Queues, queueSid)
		}
		s.cleanUp(ctx, callSid, end)
	})
}

// cleanUp hangs up the legs left and deletes the call's queues (each empty once its leg is
// gone). The store's transaction is over: nothing waits for these requests.
func (s *Service) cleanUp(ctx context.Context, callSid string, end callrelay.Ending) {
	log := s.log.With(slog.String("call_sid", callSid))
	for _, leg := range end.Legs {
		if err := s.rest.EndCall(ctx, leg, twilioapi.Completed); err != nil && !twilioapi.IsRefused(err) {
			log.Error("direct hold: hang up", slog.String("leg", leg), slog.String("error", err.Error()))
		}
	}
	seen := map[string]bool{}
	for _, q := range end.Queues {
		if seen[q] {
			continue
		}
		seen[q] = true
		if err := s.rest.DeleteQueue(ctx, q); err != nil && !twilioapi.IsNotFound(err) {
			log.Warn("direct hold: delete queue", slog.String("queue_sid", q), slog.String("error", err.Error()))
		}
	}
}

// Wait blocks until the background work started so far has finished (tests).
func (s *Service) Wait() { s.tasks.Wait() }

// Shutdown waits for the background work, or until ctx is done.
func (s *Service) Shutdown(ctx context.Context) error { return s.tasks.Shutdown(ctx, "hold") }
