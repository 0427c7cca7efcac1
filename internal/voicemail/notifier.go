// Package voicemail delivers each voicemail to its owner: one email, with the transcript (or
// why there is none), a signed link to the audio and the audio attached, sent by a durable job
// in Postgres that survives restarts, retries while SMTP fails, and gives up after about a day.
package voicemail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/recording"
)

// Delivery policy.
const (
	// MaxAttachment is the largest recording attached; a larger one is sent as the link alone.
	// About 10 minutes of Twilio's MP3, and well under common mail size limits.
	MaxAttachment = 10 << 20
	// GiveUpAfter: a voicemail not delivered this long after it was recorded is marked failed.
	GiveUpAfter = 24 * time.Hour
	// DefaultAudioTimeout bounds the download of the recording to attach (Notifier.AudioTimeout
	// when zero). Without its own bound a Twilio that sends the headers and then stalls would
	// use up the whole jobTimeout, leaving the SMTP send no time: the email would fail on every
	// attempt for as long as Twilio stalls. With it, the email goes with the link alone and
	// the SMTP send keeps its own time (mail.DefaultTimeout, 30 s) within the attempt.
	DefaultAudioTimeout = time.Minute
	// claimLease: a send claimed longer ago than this was cut off (the worker died) and may be
	// retried. Longer than a send can take (the job timeout).
	claimLease    = 5 * time.Minute
	jobTimeout    = 2 * time.Minute
	finishTimeout = 10 * time.Second
	minBackoff    = 30 * time.Second
	maxBackoff    = 30 * time.Minute
)

// Store is what the email workers need of the store (postgres.DB).
type Store interface {
	callrelay.VoicemailEmailStore
	callrelay.MissedCallStore
}

// Notifier is the job worker that emails voicemails.
type Notifier struct {
	river.WorkerDefaults[callrelay.NotifyVoicemail]

	db    Store
	mail  mail.Sender
	media *recording.Fetcher
	links *recording.Links
	from  string
	now   func() time.Time
	log   *slog.Logger

	// AudioTimeout bounds the recording's download (DefaultAudioTimeout when zero).
	AudioTimeout time.Duration
	// Zone is the instance's time zone (CALLRELAY_TIME_ZONE) for owners whose number names
	// none; nil: UTC.
	Zone *time.Location
	// StoredAudio, when set, reads callrelay's own copy of a voicemail's recording
	// (recordings.Jobs.StoredAudio), at most maxBytes (recording.ErrTooLarge past that); it
	// returns no data when there is no copy. The copy is attached when there is one, else
	// Twilio's.
	StoredAudio func(ctx context.Context, voicemailID, maxBytes int64) (data []byte, contentType string, err error)
}

// NewNotifier returns the worker. from is the sender address (CALLRELAY_MAIL_FROM); now is
// the clock that ages voicemails and schedules retries (the queue's, QueueOptions.Now).
func NewNotifier(db Store, sender mail.Sender, media *recording.Fetcher, links *recording.Links, from string, now func() time.Time, log *slog.Logger) *Notifier {
	return &Notifier{db: db, mail: sender, media: media, links: links, from: from, now: now, log: log}
}

// Work sends one voicemail's email, at most once: the claim in the database, not the job,
// decides who sends, so that a duplicate job or a second replica sends nothing.
func (n *Notifier) Work(ctx context.Context, job *river.Job[callrelay.NotifyVoicemail]) error {
	id := job.Args.VoicemailID
	log := n.log.With(slog.Int64("voicemail_id", id), slog.Int("attempt", job.Attempt))
	vm, err := n.db.ClaimNotification(ctx, id, claimLease)
	switch callrelay.ErrorCode(err) {
	case "":
	case callrelay.ECONFLICT:
		if cur, gerr := n.db.GetVoicemail(ctx, id); gerr == nil && cur.Notification.Status == callrelay.NotifySending {
			// Another attempt holds the claim, or died holding it (then its lease runs out):
			// look again after the lease instead of completing the job with nothing sent.
			log.Info("voicemail email: claimed elsewhere; snoozing")
			return river.JobSnooze(claimLease)
		}
		log.Info("voicemail email: nothing to do", slog.String("reason", callrelay.ErrorMessage(err)))
		return nil
	case callrelay.ENOTFOUND:
		return river.JobCancel(err)
	default:
		return err
	}
	log = log.With(slog.String("call_sid", vm.CallSid))

	msg, err := compose(vm, n.envelope(vm, log), n.fetchAudio(ctx, log, vm))
	if err == nil {
		err = n.mail.Send(ctx, msg)
	}
	// Record the outcome even if the job's time ran out meanwhile, but not forever.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err == nil {
		if ferr := n.db.FinishNotification(fctx, id, nil, false); ferr != nil {
			// Sent but not marked: the claim's lease expires and a retry may send it again;
			// the stable Message-ID lets the mailbox tell.
			return fmt.Errorf("mark voicemail %d sent: %w", id, ferr)
		}
		log.Info("voicemail email sent", slog.String("to", vm.OwnerEmail))
		return nil
	}
	final := mail.IsPermanent(err) || n.now().Sub(vm.CreatedAt) > GiveUpAfter
	if ferr := n.db.FinishNotification(fctx, id, err, final); ferr != nil {
		return errors.Join(err, ferr)
	}
	if final {
		log.Error("voicemail email failed for good", slog.String("error", err.Error()))
		return river.JobCancel(err)
	}
	log.Warn("voicemail email failed; will retry", slog.String("error", err.Error()))
	return err
}

// envelope is what the emails of vm need besides it: the sender, the owner's zone, the time
// of sending and a freshly signed link: the owner's inbox page of the voicemail (player,
// transcript, "Mark as handled"). The audio links of emails sent before it keep working.
func (n *Notifier) envelope(vm *callrelay.Voicemail, log *slog.Logger) envelope {
	zone, ok := ownerZone(n.Zone, vm.TimeZone)
	if !ok {
		log.Warn("voicemail email: time zone unknown; using the instance's", slog.String("time_zone", vm.TimeZone))
	}
	link := n.links.OwnerPageURL(vm.OwnerEmail, vm.ID)
	return envelope{from: n.from, zone: zone, sentAt: n.now(), link: link, linkExpires: linkExpiry(link)}
}

// ownerZone is the zone an owner reads times in: the routing's time_zone name, else the
// instance's (nil: UTC). The routing was validated when stored; a name this binary no longer
// knows falls back to the instance's, with ok false.
func ownerZone(instance *time.Location, name string) (zone *time.Location, ok bool) {
	zone = instance
	if zone == nil {
		zone = time.UTC
	}
	if name == "" {
		return zone, true
	}
	loc, err := (callrelay.Routing{TimeZone: name}).Location()
	if err != nil {
		return zone, false
	}
	return loc, true
}

// linkExpiry reads the expiry a signed link carries.
func linkExpiry(link string) time.Time {
	u, err := url.Parse(link)
	if err != nil {
		return time.Time{}
	}
	unix, _ := strconv.ParseInt(u.Query().Get("expires"), 10, 64)
	return time.Unix(unix, 0)
}

// fetchAudio downloads the recording to attach. Any failure leaves the email with the link
// alone and a note: the owner hears the message either way, and a Twilio hiccup must not hold
// the email back.
func (n *Notifier) fetchAudio(ctx context.Context, log *slog.Logger, vm *callrelay.Voicemail) audio {
	timeout := n.AudioTimeout
	if timeout <= 0 {
		timeout = DefaultAudioTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var data []byte
	var contentType string
	var err error
	if n.StoredAudio != nil {
		data, contentType, err = n.StoredAudio(ctx, vm.ID, MaxAttachment)
		if err != nil && !errors.Is(err, recording.ErrTooLarge) {
			log.Warn("voicemail email: stored copy unreadable; trying Twilio", slog.String("error", err.Error()))
		}
	}
	if data == nil && (err == nil || !errors.Is(err, recording.ErrTooLarge)) {
		data, contentType, err = n.media.Fetch(ctx, vm.RecordingURL, MaxAttachment)
	}
	switch {
	case err == nil:
		return audio{data: data, contentType: contentType}
	case errors.Is(err, recording.ErrTooLarge):
		return audio{note: "The recording is too large to attach; use the link."}
	}
	log.Warn("voicemail email: recording not attached", slog.String("error", err.Error()))
	return audio{note: "The recording could not be attached; use the link."}
}

// NextRetry backs off exponentially, from 30 s to 30 min between tries.
func (n *Notifier) NextRetry(job *river.Job[callrelay.NotifyVoicemail]) time.Time {
	d := minBackoff << min(job.Attempt-1, 10)
	return n.now().Add(min(d, maxBackoff))
}

// Timeout bounds one attempt: the audio download and the SMTP conversation.
func (n *Notifier) Timeout(*river.Job[callrelay.NotifyVoicemail]) time.Duration { return jobTimeout }

// QueueOptions tune the job queue; zero values are River's defaults. Tests shorten the poll.
type QueueOptions struct {
	FetchPollInterval time.Duration
	Logger            *slog.Logger
	// Now is the clock the queue schedules and fetches jobs by; nil: the database's clock.
	// It must be the clock that the store (postgres.DB.Now) and the notifier run on, since
	// both compute the times jobs are scheduled at.
	Now func() time.Time
	// Register, when set, adds other jobs' workers (and their queues) to the client's
	// configuration: the conference jobs (conference.Service.Register).
	Register func(*river.Config) error
	// PeriodicJobs are enqueued on their schedules (the recordings' expiry, for one).
	PeriodicJobs []*river.PeriodicJob
}

// NewQueue returns River's client, working the notifier's jobs (voicemail emails, their
// transcript follow-ups and missed-call emails, which share its mail settings), those
// opts.Register adds and those of each extra registration (e.g. events.Deliverer.Register),
// when started. The store enqueues them (postgres.Options.Jobs, an insert-only client on the same tables).
func NewQueue(pool *pgxpool.Pool, n *Notifier, opts QueueOptions, extra ...func(*river.Workers) error) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, n); err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &FollowUps{n: n}); err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	missed := NewMissedCalls(n.db, n.mail, n.from, n.now, n.log)
	missed.Zone = n.Zone
	if err := missed.Register(workers); err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	for _, register := range extra {
		if err := register(workers); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:           workers,
		FetchPollInterval: opts.FetchPollInterval,
		JobTimeout:        jobTimeout,
		// A replica killed mid-send (SIGKILL, out of memory) leaves its job running; another
		// replica takes it over once its attempt and its claim on the voicemail have surely
		// lapsed, rather than after River's default hour.
		RescueStuckJobsAfter: jobTimeout + claimLease,
		Logger:               logger,
		PeriodicJobs:         opts.PeriodicJobs,
	}
	if opts.Now != nil {
		cfg.Test.Time = postgres.RiverClock(opts.Now)
	}
	if opts.Register != nil {
		if err := opts.Register(cfg); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	return client, nil
}
