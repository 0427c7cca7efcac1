package voicemail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/mail"
)

// followUpWait is how long a follow-up waits for its voicemail's email to be settled (sent or
// failed for good) before it looks again: the email's claim lease.
const followUpWait = claimLease

// FollowUps is the job worker that emails a transcript which arrived after its voicemail's
// email went, once, as a reply to that email. Like the voicemail email, the claim in the
// database, not the job, decides who sends.
type FollowUps struct {
	river.WorkerDefaults[callrelay.NotifyTranscript]
	n *Notifier
}

// Work sends one follow-up, at most once.
func (f *FollowUps) Work(ctx context.Context, job *river.Job[callrelay.NotifyTranscript]) error {
	n := f.n
	id := job.Args.VoicemailID
	log := n.log.With(slog.Int64("voicemail_id", id), slog.Int("attempt", job.Attempt))
	vm, err := n.db.ClaimFollowUp(ctx, id, claimLease)
	switch callrelay.ErrorCode(err) {
	case "":
	case callrelay.ECONFLICT:
		if vm != nil && (vm.FollowUp == callrelay.NotifyPending || vm.FollowUp == callrelay.NotifySending) {
			// The voicemail's email is still being sent or retried (it may yet carry the
			// transcript), or another attempt holds the claim: look again later.
			log.Info("transcript email: waiting", slog.String("reason", callrelay.ErrorMessage(err)))
			return river.JobSnooze(followUpWait)
		}
		log.Info("transcript email: nothing to do", slog.String("reason", callrelay.ErrorMessage(err)))
		return nil
	case callrelay.ENOTFOUND:
		return river.JobCancel(err)
	default:
		return err
	}
	log = log.With(slog.String("call_sid", vm.CallSid))

	msg, err := composeFollowUp(vm, n.envelope(vm, log))
	if err == nil {
		err = n.mail.Send(ctx, msg)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err == nil {
		if ferr := n.db.FinishFollowUp(fctx, id, nil, false); ferr != nil {
			return fmt.Errorf("mark voicemail %d follow-up sent: %w", id, ferr)
		}
		log.Info("transcript email sent", slog.String("to", vm.OwnerEmail))
		return nil
	}
	since := vm.CreatedAt
	if vm.TranscribedAt != nil {
		since = *vm.TranscribedAt
	}
	final := mail.IsPermanent(err) || n.now().Sub(since) > GiveUpAfter
	if ferr := n.db.FinishFollowUp(fctx, id, err, final); ferr != nil {
		return errors.Join(err, ferr)
	}
	if final {
		log.Error("transcript email failed for good", slog.String("error", err.Error()))
		return river.JobCancel(err)
	}
	log.Warn("transcript email failed; will retry", slog.String("error", err.Error()))
	return err
}

// NextRetry backs off like the voicemail email.
func (f *FollowUps) NextRetry(job *river.Job[callrelay.NotifyTranscript]) time.Time {
	d := minBackoff << min(job.Attempt-1, 10)
	return f.n.now().Add(min(d, maxBackoff))
}

// Timeout bounds one attempt: the SMTP conversation.
func (f *FollowUps) Timeout(*river.Job[callrelay.NotifyTranscript]) time.Duration { return jobTimeout }
