package conference

import (
	"context"
	"log/slog"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/twilioapi"
)

// Direct-mode hold. Each party's leg is, at any time, in the bridge (the caller's original
// <Dial>, or after a resume a <Dial><Queue> run by one leg: the bridge's owner), in its own
// queue (held, hearing the hold music), or in callrelay's waiting loop (while the other is
// held). One UpdateCall moves one leg:
//
//	hold X, nobody held, X owns the bridge:  the other leg → waiting loop; X's Dial ends and its
//	                                          action puts X in X's queue
//	hold X, nobody held, X does not own it:  X → X's queue; the owner's Dial ends and its action
//	                                          puts the owner in the waiting loop
//	hold X, the other held (X waiting):      X → X's queue
//	resume X, the other waiting:             the other → <Dial><Queue> of X's queue: bridged
//	                                          again, the other owns the bridge
//	resume X, the other held too:            X → waiting loop
//
// The parent is never redirected while its original Dial runs: that would hang up the callee.

// directHold makes the one UpdateCall a hold or resume needs (the table above).
func (s *Service) directHold(ctx context.Context, req postgres.HoldRequest, t postgres.HoldTarget) error {
	x, o := req.Party, callrelay.OtherParty(req.Party)
	leg := map[string]string{callrelay.PartyCaller: t.CallerSid, callrelay.PartyCallee: t.CalleeSid}
	var sid, url string
	switch {
	case req.Hold && !t.Held.Of(o) && t.Owner == x:
		sid, url = leg[o], s.urls.HoldWaitURL(t.CallerSid, o)
	case req.Hold:
		sid, url = leg[x], s.urls.HoldEnqueueURL(t.CallerSid, x)
	case !t.Held.Of(o):
		sid, url = leg[o], s.urls.HoldResumeURL(t.CallerSid, o, x)
	default:
		sid, url = leg[x], s.urls.HoldWaitURL(t.CallerSid, x)
	}
	// A redirected leg keeps no Dial whose action would tell callrelay that it hung up: ask
	// Twilio to say so.
	return s.rest.Redirect(ctx, sid, url, s.urls.LegStatusURL(t.CallerSid))
}

// CallStatus applies the caller's own status callback (the number's, or the one a redirect
// asked for); a held call that ends so hangs up the callee's leg and deletes its queues.
func (s *Service) CallStatus(ctx context.Context, callSid, status string, at time.Time) (bool, error) {
	known, err := s.db.RecordCallStatus(ctx, callSid, status, at)
	if err == nil && known && callrelay.IsTerminal(status) {
		s.FinishHeld(callSid, callSid, "caller "+status, "")
		// A conference caller who hung up: the legs still ringing are ended (the conference's
		// participant-leave, on another replica, may come later or not at all).
		s.background(func(ctx context.Context) {
			live, err := s.db.LiveLegs(ctx, callSid)
			if err != nil {
				s.log.Error("call status: legs to end", slog.String("call_sid", callSid), slog.String("error", err.Error()))
				return
			}
			var conf []callrelay.LiveLeg
			for _, l := range ringing(live) {
				if l.ConferenceSid != "" {
					conf = append(conf, l)
				}
			}
			s.endLegs(ctx, callSid, conf)
		})
	}
	return known, err
}

// FinishHeld ends a direct-mode call that went through a hold, in the background (a webhook
// answers at once): its original Dial is over, so nothing else will hang up the party left
// behind. gone is the leg that has hung up (or hangs up by the webhook's answer); queueSid,
// when known, is a queue to delete too.
func (s *Service) FinishHeld(callSid, gone, reason, queueSid string) {
	s.background(func(ctx context.Context) {
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

// cleanUp hangs up the legs left and deletes the call's queues (each empty once its leg is gone).
func (s *Service) cleanUp(ctx context.Context, callSid string, end postgres.Ending) {
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
