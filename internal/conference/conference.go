// Package conference runs conference-mode calls through Twilio's REST API: it adds the owner's
// targets to the caller's conference when the caller joins, keeps the first to answer and ends
// the others, and sends the caller to voicemail when nobody answers. (Holding a party, in either
// mode, is package hold's.)
//
// Webhooks are answered first; the REST requests they cause run in the background (creating
// participants is paced at about one per second), tracked so that shutdown and tests can wait
// for them. Two steps that a lost callback or a dead process must not skip are durable jobs in
// Postgres (jobs.go): dialling the owner when the caller joins, and the call's deadline, which
// sends the caller to voicemail when nobody rings or answers in time. Every decision that must
// be taken once — which target to dial next, who answered first, whether nobody did — is taken
// in Postgres, so that replicas can share a call.
package conference

import (
	"context"
	"log/slog"
	"time"

	"github.com/callrelay/callrelay/internal/background"
	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiml"
)

// REST is the part of Twilio's REST API the conference flow uses (*twilioapi.Client).
type REST interface {
	CreateParticipant(ctx context.Context, conferenceSid string, p twilioapi.Participant) (string, error)
	CreateCall(ctx context.Context, c twilioapi.Call) (string, error)
	KeepConference(ctx context.Context, conferenceSid, callSid string) error
	Redirect(ctx context.Context, callSid, url, statusCallback string) error
	EndCall(ctx context.Context, callSid, status string) error
}

// bookkeepingTimeout bounds the writes that record what a REST request did.
const bookkeepingTimeout = 10 * time.Second

// taskTimeout bounds one piece of background work: ringing ten targets paced a second apart,
// each request with its own timeout, fits well within it.
const taskTimeout = 2 * time.Minute

// Service runs conference-mode calls. Its zero value is not usable: use New.
type Service struct {
	db   callrelay.ConferenceStore
	rest REST
	urls *twiml.Builder
	log  *slog.Logger
	// RedirectAttempts and RedirectBackoff: how hard adding a participant and the voicemail
	// redirect try when Twilio fails (the caller keeps hearing the wait music meanwhile).
	RedirectAttempts int
	RedirectBackoff  time.Duration

	tasks *background.Group
	rings pending // ring jobs this service caused and has not seen finish (for Wait)
}

// New returns a Service.
func New(db callrelay.ConferenceStore, rest REST, urls *twiml.Builder, log *slog.Logger) *Service {
	return &Service{db: db, rest: rest, urls: urls, log: log, RedirectAttempts: 3, RedirectBackoff: time.Second,
		tasks: &background.Group{Timeout: taskTimeout}}
}

// Wait blocks until the background work started so far has finished, including the ring jobs
// that this service's conference events enqueued (worked by a queue in this process), but no
// longer than waitJobsMax for those. Tests use it; a replica's shutdown does not wait for jobs
// (they are durable: another replica or the next start works them).
func (s *Service) Wait() {
	s.tasks.Wait()
	if !s.rings.wait(waitJobsMax) {
		s.log.Warn("conference: ring jobs still pending; is the job queue running?")
	}
	s.tasks.Wait()
}

// Shutdown waits for the background work, or until ctx is done.
func (s *Service) Shutdown(ctx context.Context) error { return s.tasks.Shutdown(ctx, "conference") }

// ConferenceEvent applies a conference status callback: the caller joining starts the ringing;
// a party hanging up ends the legs still ringing.
func (s *Service) ConferenceEvent(ctx context.Context, ev callrelay.ConferenceEvent) (callrelay.ConferenceResult, error) {
	res, err := s.db.RecordConferenceEvent(ctx, ev)
	if err != nil {
		return res, err
	}
	if res.Ring {
		// The ring job was enqueued with the join (callrelay.RingOwner): see ringWorker.
		s.rings.add(ev.CallSid)
	}
	if legs := ringing(res.LiveLegs); len(legs) > 0 {
		s.tasks.Go(func(ctx context.Context) { s.endLegs(ctx, ev.CallSid, legs) })
	}
	return res, nil
}

// LegProgress applies a leg's status callback and, in conference mode, acts on it: the first
// leg to answer is kept and the others are ended; a leg that ends unanswered lets the next
// target ring, or, when it was the last, sends the caller to voicemail. (A direct-mode leg is
// only recorded: what its end does to a held call is hold.Service.LegProgress.)
func (s *Service) LegProgress(ctx context.Context, p callrelay.LegProgress) (callrelay.LegResult, error) {
	res, err := s.db.RecordLegProgress(ctx, p)
	if err != nil || !res.Known || res.Mode == callrelay.ModeDirect {
		return res, err
	}
	switch {
	case p.Status == callrelay.StatusInProgress && res.Callee == p.CallSid:
		s.tasks.Go(func(ctx context.Context) {
			live, err := s.db.LiveLegs(ctx, p.ParentCallSid)
			if err != nil {
				s.log.Error("conference: legs to end", slog.String("call_sid", p.ParentCallSid), slog.String("error", err.Error()))
				return
			}
			s.endLegs(ctx, p.ParentCallSid, others(live, p.CallSid))
		})
	case p.Status == callrelay.StatusInProgress && res.Screened:
		// Its screen runs now; it joins (or is ended) when it accepts (Accepted) or not.
	case p.Status == callrelay.StatusInProgress:
		// Answered too late: someone else has the call, or it went to voicemail.
		loser := callrelay.LiveLeg{CallSid: p.CallSid, Answered: true, ConferenceSid: res.ConferenceSid}
		s.tasks.Go(func(ctx context.Context) { s.endLegs(ctx, p.ParentCallSid, []callrelay.LiveLeg{loser}) })
	case callrelay.IsTerminal(p.Status):
		// The next target (ringing in turn), or voicemail. Lost with this process, the
		// call's deadline job sends the caller to voicemail instead.
		s.tasks.Go(func(ctx context.Context) { _ = s.ring(ctx, p.ParentCallSid) })
	}
	return res, nil
}

// ringing returns the legs that have not answered. When a party hangs up the conference ends
// (both have EndConferenceOnExit), and Twilio hangs up the participants in it, which have no
// TwiML left: only the legs still ringing are callrelay's to end. Ending the others too would
// race Twilio and fail (found by the simulator: 404 and 21220 at the end of every call).
func ringing(legs []callrelay.LiveLeg) []callrelay.LiveLeg {
	var out []callrelay.LiveLeg
	for _, l := range legs {
		if !l.Answered {
			out = append(out, l)
		}
	}
	return out
}

func others(legs []callrelay.LiveLeg, keep string) []callrelay.LiveLeg {
	var out []callrelay.LiveLeg
	for _, l := range legs {
		if l.CallSid != keep {
			out = append(out, l)
		}
	}
	return out
}

// ring dials the targets that may be dialed now — all of them paced when ringing at once, the
// next one when ringing in turn — then sends the caller to voicemail if nobody can answer any
// more. Twilio failing (rather than refusing one target) sends the caller to voicemail at once.
// It fails only when the store does (the ring job tries again).
func (s *Service) ring(ctx context.Context, callSid string) error {
	log := s.log.With(slog.String("call_sid", callSid))
	for {
		t, ok, err := s.db.ClaimTarget(ctx, callSid)
		if err != nil {
			log.Error("conference: claim target", slog.String("error", err.Error()))
			return err
		}
		if !ok {
			break
		}
		d := callrelay.RingResult{Index: t.Index, Target: t.Target.String(), Label: callrelay.CalleeLabel(t.Index)}
		if t.Routing.ScreensTarget(t.Index) {
			// A participant cannot run TwiML before it joins: a screened target is called
			// with its screen as the call's Url, which joins the conference on acceptance.
			d.Screen = t.Target.Screening()
			d.Leg, d.Err = s.createCall(ctx, t, callSid)
		} else {
			d.Leg, d.Err = s.createParticipant(ctx, t, callSid)
		}
		// The bookkeeping must happen even when the ring ran out of time: without it the call
		// could never go to voicemail.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		wanted, err := s.db.FinishTarget(bctx, callSid, d)
		cancel()
		if err != nil {
			log.Error("conference: record participant", slog.String("leg", d.Leg), slog.String("error", err.Error()))
		}
		if d.Err != nil {
			log.Warn("conference: add participant", slog.String("target", d.Label), slog.String("error", d.Err.Error()))
			if !twilioapi.IsRefused(d.Err) {
				return s.toVoicemail(context.WithoutCancel(ctx), callSid, true, "Twilio unreachable while adding the owner")
			}
		}
		if d.Leg != "" && err == nil && !wanted {
			s.endLegs(ctx, callSid, []callrelay.LiveLeg{{CallSid: d.Leg, ConferenceSid: t.ConferenceSid}})
		}
	}
	return s.toVoicemail(context.WithoutCancel(ctx), callSid, false, "nobody answered")
}

// createParticipant adds a target, trying again when Twilio is busy (429) or failing (5xx, a
// timeout) rather than refusing: the caller goes to voicemail only if it keeps failing.
func (s *Service) createParticipant(ctx context.Context, t callrelay.RingTarget, callSid string) (string, error) {
	var leg string
	err := s.retry(ctx, func() (err error) {
		leg, err = s.rest.CreateParticipant(ctx, t.ConferenceSid, s.participant(t, callSid))
		return err
	})
	return leg, err
}

// createCall places a screened target's call (see ring), with the same retries as
// createParticipant.
func (s *Service) createCall(ctx context.Context, t callrelay.RingTarget, callSid string) (string, error) {
	p := s.participant(t, callSid)
	c := twilioapi.Call{
		From: p.From, CallToken: p.CallToken, To: p.To,
		SipAuthUsername: p.SipAuthUsername, SipAuthPassword: p.SipAuthPassword,
		URL:            s.urls.ConferenceScreenURL(callSid, t.Index),
		TimeoutSeconds: p.TimeoutSeconds, StatusCallback: p.StatusCallback,
	}
	if t.Routing.MachineDetection && t.Target.Type == callrelay.TargetPhone {
		c.MachineDetection = twiml.MachineDetection
	}
	var leg string
	err := s.retry(ctx, func() (err error) {
		leg, err = s.rest.CreateCall(ctx, c)
		return err
	})
	return leg, err
}

// Accepted ends the other legs of a conference-mode call whose screened leg leg has just
// accepted and become the callee (it joins the conference with its screen's next document).
func (s *Service) Accepted(callSid, leg string) {
	s.tasks.Go(func(ctx context.Context) {
		live, err := s.db.LiveLegs(ctx, callSid)
		if err != nil {
			s.log.Error("conference: legs to end", slog.String("call_sid", callSid), slog.String("error", err.Error()))
			return
		}
		s.endLegs(ctx, callSid, others(live, leg))
	})
}

// retry runs f until it succeeds, Twilio refuses it (trying again would fail the same way),
// ctx ends, or RedirectAttempts are spent, waiting RedirectBackoff, doubled each time, between.
func (s *Service) retry(ctx context.Context, f func() error) error {
	var err error
	for attempt := range max(s.RedirectAttempts, 1) {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(s.RedirectBackoff << (attempt - 1)):
			}
		}
		if err = f(); err == nil || twilioapi.IsRefused(err) {
			return err
		}
	}
	return err
}

// participant is the CreateParticipant request for a claimed target. The callee sees the
// caller's number only with the inbound call's CallToken: Twilio refuses any other From that is
// not the account's.
func (s *Service) participant(t callrelay.RingTarget, callSid string) twilioapi.Participant {
	p := twilioapi.Participant{
		From:           t.Number,
		To:             t.Target.ParticipantTo(),
		Label:          callrelay.CalleeLabel(t.Index),
		TimeoutSeconds: t.Routing.TimeoutSeconds,
		StatusCallback: s.urls.ParticipantStatusURL(callSid, t.Index),
	}
	if t.Routing.CallerID == callrelay.CallerIDCaller && t.CallToken != "" && twiml.ShowableCallerID(t.From) {
		p.From, p.CallToken = t.From, t.CallToken
	}
	if t.Target.Type == callrelay.TargetSIP {
		p.SipAuthUsername, p.SipAuthPassword = t.Target.Username, t.Target.Password
	}
	return p
}

// toVoicemail moves a call nobody answered to voicemail (once, whichever replica gets there)
// and redirects the caller there; giveUp does so without waiting for the targets. Only the
// store failing is an error: Twilio's is logged (the caller may have gone).
func (s *Service) toVoicemail(ctx context.Context, callSid string, giveUp bool, reason string) error {
	moved, live, err := s.db.StopRinging(ctx, callSid, giveUp, reason)
	if err != nil {
		s.log.Error("conference: stop ringing", slog.String("call_sid", callSid), slog.String("error", err.Error()))
		return err
	}
	if !moved {
		return nil
	}
	s.log.Info("conference: nobody answered, to voicemail", slog.String("call_sid", callSid), slog.String("reason", reason))
	// The caller's Dial action follows; it finds the call in voicemail and does nothing.
	rerr := s.retry(ctx, func() error { return s.rest.Redirect(ctx, callSid, s.urls.VoicemailURL(), "") })
	if rerr != nil {
		s.log.Error("conference: redirect to voicemail", slog.String("call_sid", callSid), slog.String("error", rerr.Error()))
	}
	s.endLegs(ctx, callSid, live)
	return nil
}

// endLegs hangs up legs the call no longer wants. A leg that has answered may already be in
// the conference, where its leaving would end the conference (EndConferenceOnExit): it is
// told not to first.
func (s *Service) endLegs(ctx context.Context, callSid string, legs []callrelay.LiveLeg) {
	for _, l := range legs {
		log := s.log.With(slog.String("call_sid", callSid), slog.String("leg", l.CallSid))
		if !l.Answered {
			// Twilio refuses to cancel a call that has ended, and ignores a cancel of one that
			// answered meanwhile: that one's answered callback ends it as a late answer.
			err := s.rest.EndCall(ctx, l.CallSid, twilioapi.Canceled)
			if err == nil || twilioapi.IsRefused(err) {
				continue
			}
			log.Warn("conference: cancel leg", slog.String("error", err.Error()))
		}
		if l.ConferenceSid != "" {
			if err := s.rest.KeepConference(ctx, l.ConferenceSid, l.CallSid); err != nil && !twilioapi.IsNotFound(err) {
				log.Warn("conference: keep conference", slog.String("error", err.Error()))
			}
		}
		if err := s.rest.EndCall(ctx, l.CallSid, twilioapi.Completed); err != nil && !twilioapi.IsNotFound(err) {
			log.Error("conference: end leg", slog.String("error", err.Error()))
		}
	}
}

// CallerEnded ends, in the background, the legs still ringing of a conference-mode call whose
// caller's own status callback says it has ended (the conference's participant-leave, on
// another replica, may come later or not at all). Other calls have none.
func (s *Service) CallerEnded(callSid string) {
	s.tasks.Go(func(ctx context.Context) {
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
