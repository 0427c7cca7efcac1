package events

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Delivery policy.
const (
	// GiveUpAfter: an event not delivered this long after it happened is dropped.
	GiveUpAfter = 24 * time.Hour
	// RequestTimeout bounds one POST, connection to last byte of the answer.
	RequestTimeout = 15 * time.Second
	minBackoff     = 30 * time.Second
	maxBackoff     = 30 * time.Minute
	jobTimeout     = RequestTimeout + 5*time.Second
	finishTimeout  = 10 * time.Second
	maxAnswerBytes = 64 << 10
)

// Options are a Deliverer's settings besides the secret.
type Options struct {
	// AllowPrivate lets events go to loopback, private and link-local addresses
	// (CALLRELAY_EVENT_ALLOW_PRIVATE).
	AllowPrivate bool
	// RootCAs trusts these certificates instead of the system's (tests' receivers).
	RootCAs *x509.CertPool
	// MinBackoff is the first retry's delay, doubling up to 30 min (30 s when zero). Tests
	// shorten it.
	MinBackoff time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// Deliverer is the job worker that POSTs one event to one endpoint.
type Deliverer struct {
	river.WorkerDefaults[callrelay.DeliverEvent]

	db      callrelay.EventStore
	signer  *Signer
	client  *http.Client
	backoff time.Duration
	now     func() time.Time
	log     *slog.Logger
}

// NewDeliverer returns the worker.
func NewDeliverer(db callrelay.EventStore, signer *Signer, opts Options) *Deliverer {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !opts.AllowPrivate {
		dialer.Control = controlPublic
	}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would be the address checked, not the endpoint
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  RequestTimeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   RequestTimeout,
		// A redirect is an answer, not a delivery: following it would send the event (and
		// its signature) somewhere the operator did not list.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = callrelay.SystemClock
	}
	backoff := opts.MinBackoff
	if backoff <= 0 {
		backoff = minBackoff
	}
	return &Deliverer{db: db, signer: signer, client: client, backoff: backoff, now: now, log: log}
}

// Register adds the worker to a queue's workers (voicemail.NewQueue's extra).
func (d *Deliverer) Register(w *river.Workers) error { return river.AddWorkerSafely(w, d) }

// Work sends the event once; a failure is retried with the same webhook-id, and a fresh
// webhook-timestamp and signature (receivers refuse old timestamps).
func (d *Deliverer) Work(ctx context.Context, job *river.Job[callrelay.DeliverEvent]) error {
	e, err := d.db.GetEvent(ctx, job.Args.EventID)
	switch {
	case callrelay.ErrorCode(err) == callrelay.ENOTFOUND:
		return river.JobCancel(err) // its call was deleted
	case err != nil:
		return err
	}
	log := d.log.With(slog.String("event_id", e.ID), slog.String("event", e.Type), slog.String("call_sid", e.CallSid),
		slog.String("endpoint", job.Args.URL), slog.Int("attempt", job.Attempt))
	err = d.post(ctx, job.Args.URL, e)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err == nil {
		if rerr := d.db.RecordDelivery(fctx, e, job.Args.URL, "delivered", job.Attempt, nil); rerr != nil {
			log.Warn("event delivered; not recorded", slog.String("error", rerr.Error()))
		}
		log.Info("event delivered")
		return nil
	}
	final := errors.Is(err, ErrForbiddenAddress) || d.now().Sub(e.CreatedAt) > GiveUpAfter
	outcome := "retry"
	if final {
		outcome = "failed"
	}
	if rerr := d.db.RecordDelivery(fctx, e, job.Args.URL, outcome, job.Attempt, err); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if final {
		log.Error("event not delivered; given up", slog.String("error", err.Error()))
		return river.JobCancel(err)
	}
	log.Warn("event not delivered; will retry", slog.String("error", err.Error()))
	return err
}

// post sends one signed request and succeeds on a 2xx answer.
func (d *Deliverer) post(ctx context.Context, endpoint string, e *callrelay.StoredEvent) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(e.Body))
	if err != nil {
		return fmt.Errorf("event request: %w", err)
	}
	at := d.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "callrelay-events")
	req.Header.Set(HeaderID, e.ID)
	req.Header.Set(HeaderTimestamp, fmt.Sprint(at.Unix()))
	req.Header.Set(HeaderSignature, d.signer.Sign(e.ID, at, e.Body))
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("post event: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post event: endpoint answered %s", resp.Status)
	}
	return nil
}

// NextRetry backs off exponentially, from 30 s to 30 min between tries: about 50 tries in
// the day an event is kept trying.
func (d *Deliverer) NextRetry(job *river.Job[callrelay.DeliverEvent]) time.Time {
	b := d.backoff << min(job.Attempt-1, 10)
	return d.now().Add(min(b, maxBackoff))
}

// Timeout bounds one attempt.
func (d *Deliverer) Timeout(*river.Job[callrelay.DeliverEvent]) time.Duration { return jobTimeout }
