package conference

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/twilioapi"
)

// A conference-mode call must never stall: a caller left in the wait music is billed and gets
// no voicemail. Two durable jobs (River, in the voicemail queue's client, on its own queue)
// see to it:
//
//   - RingOwner, written with the caller's participant-join, dials the owner's targets. A
//     process that dies after answering the join, before taking the job, leaves it to another
//     replica or the next start. Dialling twice is impossible: each target is claimed once in
//     Postgres (ClaimTarget), so a duplicate job or a second replica dials
//     nothing more.
//   - ConferenceDeadline, written when the voice webhook sends the caller to the conference
//     (so that it exists even if the participant-join is lost), watches the call. When
//     RingBackupAfter has passed since the join and no target has been claimed, the process
//     that took the ring job died before dialling (River would hand that job over only after
//     minutes): it dials the owner itself. When no leg rings or has answered RingBudget after
//     the join (after the voice webhook and the greeting when no join arrived), it sends the
//     caller to voicemail; a leg still ringing then pushes that to its own timeout plus
//     legGrace.
//
// Both decide on the store's clock (ConferenceStore.Now), which the queue shares.

// Deadline policy.
const (
	// RingBackupAfter: this long after the caller's join, with no target claimed, the deadline
	// job dials the owner. The ring job claims its first target within milliseconds.
	RingBackupAfter = 15 * time.Second
	// deadlineMargin covers Twilio's latency on top of the ring time: the participant-join
	// reaching us, CreateParticipant, the legs' status callbacks.
	deadlineMargin = 30 * time.Second
	// stepSlack is, ringing in turn, the time between one target's end and the next one's
	// CreateParticipant (the status callback, the ring job or goroutine).
	stepSlack = 5 * time.Second
	// legGrace: a leg that still looks ringing this long after its timeout has ended
	// unnoticed (its callback was lost) or Twilio is late; either way the caller stops waiting.
	legGrace = 15 * time.Second
	// screenSlack is how long a screened target's leg may take, after it answers, to accept:
	// the screen's two rounds of the line and a 5 s wait for the key (twiml.ScreenPress),
	// or machine detection and the whisper.
	screenSlack = 30 * time.Second
	// sayCharsPerSecond under-estimates the speed of a <Say>, so that a greeting is surely
	// over when the deadline of a call whose join never arrived counts from its estimated end.
	sayCharsPerSecond = 10
	// ringJobTimeout bounds one ring job: ten targets paced a second apart, each request with
	// its own timeout and tries.
	ringJobTimeout = taskTimeout
	// ringRetry: a ring job that failed (the database) tries again this soon.
	ringRetry = time.Second
	// waitJobsMax bounds how long Wait waits for ring jobs.
	waitJobsMax = 30 * time.Second
)

// RingBudget is how long, after the caller joins, the owner's targets may take to ring and
// answer: every target's timeout when ringing in turn (plus the step between two), one timeout
// when ringing at once, plus the pacing of CreateParticipant and deadlineMargin.
// A screened target adds screenSlack (once when ringing at once).
func RingBudget(r callrelay.Routing) time.Duration {
	n := time.Duration(len(r.Targets))
	timeout := time.Duration(r.TimeoutSeconds) * time.Second
	pacing := twilioapi.DefaultParticipantInterval
	screened := time.Duration(0)
	for i := range r.Targets {
		if r.ScreensTarget(i) {
			screened++
		}
	}
	if r.Ring == callrelay.RingSequential {
		return n*(timeout+pacing+stepSlack) + screened*screenSlack + deadlineMargin
	}
	return timeout + n*pacing + min(screened, 1)*screenSlack + deadlineMargin
}

// sayTime over-estimates how long Twilio takes to say text.
func sayTime(text string) time.Duration {
	return time.Duration(len([]rune(text))) * time.Second / sayCharsPerSecond
}

// Deadline is when a conference-mode call read by WatchConferenceCall must have a
// leg ringing or answered: RingBudget after the caller joined or, with no join recorded, after
// the voice webhook and the greeting; never before the newest leg still ringing has had its
// timeout and legGrace.
func Deadline(w callrelay.ConferenceWatch) time.Time {
	start := w.StartedAt.Add(sayTime(w.Routing.Greeting))
	if w.JoinedAt != nil {
		start = *w.JoinedAt
	}
	due := start.Add(RingBudget(w.Routing))
	if w.LastRing != nil {
		grace := legGrace
		if screensAny(w.Routing) {
			grace += screenSlack // the leg may have answered and be in its screen
		}
		due = maxTime(due, w.LastRing.Add(time.Duration(w.Routing.TimeoutSeconds)*time.Second+grace))
	}
	return due
}

func screensAny(r callrelay.Routing) bool {
	for i := range r.Targets {
		if r.ScreensTarget(i) {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Watch enqueues the deadline job of a conference-mode call that the voice webhook is sending
// to its conference. The webhook answers only after it is written: a caller never waits in a
// conference without one. The job first looks when a join may have been left undialled.
func Watch(ctx context.Context, db callrelay.ConferenceStore, callSid string) error {
	return db.WatchConference(ctx, callSid, RingBackupAfter)
}

// queueWorkers is how many conference jobs one replica works at once. A ring job mostly waits
// for CreateParticipant's pacing (one a second per replica), a deadline job for the database.
const queueWorkers = 100

// Register adds the conference jobs' workers and queue (callrelay.ConferenceQueue) to the job
// queue's configuration (voicemail.QueueOptions.Register).
func (s *Service) Register(cfg *river.Config) error {
	if cfg.Workers == nil {
		cfg.Workers = river.NewWorkers()
	}
	if err := river.AddWorkerSafely(cfg.Workers, &ringWorker{s: s}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(cfg.Workers, &deadlineWorker{s: s}); err != nil {
		return err
	}
	if cfg.Queues == nil {
		cfg.Queues = map[string]river.QueueConfig{}
	}
	cfg.Queues[callrelay.ConferenceQueue] = river.QueueConfig{MaxWorkers: queueWorkers}
	return nil
}

// ringWorker works callrelay.RingOwner: it dials the targets that may be dialled now (all of
// them when ringing at once, the first when in turn), or sends the caller to voicemail when
// none can be. The claims in Postgres make it idempotent.
type ringWorker struct {
	river.WorkerDefaults[callrelay.RingOwner]
	s *Service
}

func (w *ringWorker) Work(ctx context.Context, job *river.Job[callrelay.RingOwner]) error {
	callSid := job.Args.CallSid
	if err := w.s.ring(ctx, callSid); err != nil {
		if job.Attempt < job.MaxAttempts {
			return err // tried again; the deadline stands behind the last try
		}
		w.s.log.Error("conference: ring job gave up", slog.String("call_sid", callSid), slog.String("error", err.Error()))
	}
	w.s.rings.done(callSid)
	return nil
}

func (w *ringWorker) NextRetry(*river.Job[callrelay.RingOwner]) time.Time {
	return w.s.db.Now().Add(ringRetry)
}

func (w *ringWorker) Timeout(*river.Job[callrelay.RingOwner]) time.Duration { return ringJobTimeout }

// deadlineWorker works callrelay.ConferenceDeadline (see the top of this file): it does
// nothing once someone answered or the call ended, dials the owner if the ring job did not,
// sends the caller to voicemail at the deadline, and otherwise looks again later (snoozes).
// ClaimTarget and StopRinging decide once, whichever replica runs.
type deadlineWorker struct {
	river.WorkerDefaults[callrelay.ConferenceDeadline]
	s *Service
}

func (w *deadlineWorker) Work(ctx context.Context, job *river.Job[callrelay.ConferenceDeadline]) error {
	wait, err := w.s.watch(ctx, job.Args.CallSid)
	if err != nil {
		return err
	}
	if wait > 0 {
		return river.JobSnooze(wait)
	}
	return nil
}

func (w *deadlineWorker) NextRetry(job *river.Job[callrelay.ConferenceDeadline]) time.Time {
	return w.s.db.Now().Add(time.Duration(min(job.Attempt, 30)) * time.Second)
}

// Timeout: a look may dial the owner, as a ring job does.
func (w *deadlineWorker) Timeout(*river.Job[callrelay.ConferenceDeadline]) time.Duration {
	return ringJobTimeout
}

// watch applies a call's deadline: it returns how long until it should look again, or 0 when
// the call needs nothing more (someone answered, it ended, it went to voicemail now).
func (s *Service) watch(ctx context.Context, callSid string) (time.Duration, error) {
	w, err := s.db.WatchConferenceCall(ctx, callSid)
	if err != nil || !w.Known || !w.Waiting {
		return 0, err
	}
	now, due := s.db.Now(), Deadline(w)
	if !now.Before(due) {
		from, since := w.StartedAt, "the voice webhook (no participant-join arrived)"
		if w.JoinedAt != nil {
			from, since = *w.JoinedAt, "the caller joined"
		}
		reason := fmt.Sprintf("deadline: no leg ringing or answered %s after %s", due.Sub(from).Round(time.Second), since)
		return 0, s.toVoicemail(ctx, callSid, true, reason)
	}
	if w.Claimed > 0 {
		return due.Sub(now), nil
	}
	if w.JoinedAt == nil {
		// The join may still come (a long greeting): look again for an undialled owner.
		return min(due.Sub(now), RingBackupAfter), nil
	}
	if backup := w.JoinedAt.Add(RingBackupAfter); now.Before(backup) {
		return min(due.Sub(now), backup.Sub(now)), nil
	}
	s.log.Warn("conference: owner not dialled after the join; dialling", slog.String("call_sid", callSid))
	if err := s.ring(ctx, callSid); err != nil {
		return 0, err
	}
	return max(due.Sub(s.db.Now()), time.Second), nil
}

// pending counts, per call, the ring jobs a Service caused and has not seen finish.
type pending struct {
	mu      sync.Mutex
	n       map[string]int
	changed chan struct{} // closed, and replaced, on every change
}

func (p *pending) add(callSid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == nil {
		p.n = map[string]int{}
	}
	p.n[callSid]++
	p.notifyLocked()
}

// done counts one job of callSid finished; jobs this service did not cause are ignored.
func (p *pending) done(callSid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[callSid] == 0 {
		return
	}
	if p.n[callSid]--; p.n[callSid] == 0 {
		delete(p.n, callSid)
	}
	p.notifyLocked()
}

func (p *pending) notifyLocked() {
	if p.changed != nil {
		close(p.changed)
	}
	p.changed = make(chan struct{})
}

// wait blocks until nothing is pending (true) or timeout has passed (false).
func (p *pending) wait(timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		if len(p.n) == 0 {
			p.mu.Unlock()
			return true
		}
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}
