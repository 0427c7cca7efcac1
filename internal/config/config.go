// Package config reads callrelay's configuration from the environment into one struct that is
// passed explicitly to whatever needs it.
package config

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kelseyhightower/envconfig"
)

// Config is docs/design.md's configuration table.
type Config struct {
	Addr             string        `envconfig:"CALLRELAY_ADDR" default:":8080"`
	DatabaseURL      Secret        `envconfig:"DATABASE_URL"`
	PublicURL        URL           `envconfig:"CALLRELAY_PUBLIC_URL" default:"http://localhost:8080"`
	TwilioAccountSID string        `envconfig:"TWILIO_ACCOUNT_SID"`
	TwilioAuthToken  Secret        `envconfig:"TWILIO_AUTH_TOKEN"`
	TwilioAPIURL     URL           `envconfig:"TWILIO_API_URL" default:"https://api.twilio.com"`
	OpsToken         Secret        `envconfig:"CALLRELAY_OPS_TOKEN"`
	SMTPURL          Secret        `envconfig:"SMTP_URL"`
	MailFrom         string        `envconfig:"CALLRELAY_MAIL_FROM" default:"callrelay@localhost"`
	TimeZone         Zone          `envconfig:"CALLRELAY_TIME_ZONE" default:"UTC"`
	MailDir          string        `envconfig:"CALLRELAY_MAIL_DIR" default:".data/mail"`
	SpoolDir         string        `envconfig:"CALLRELAY_SPOOL_DIR" default:".data/spool"`
	TranscriptWait   time.Duration `envconfig:"CALLRELAY_TRANSCRIPT_WAIT" default:"90s"`
	// MissedCallDelay: how long after the caller's final status an unanswered call is judged
	// (a voicemail's recording-status may come after it).
	MissedCallDelay       time.Duration `envconfig:"CALLRELAY_MISSED_CALL_DELAY" default:"2m"`
	HoldMusicURL          URL           `envconfig:"CALLRELAY_HOLD_MUSIC_URL"`
	LinkSecret            Secret        `envconfig:"CALLRELAY_LINK_SECRET"`
	InsecureSkipSignature bool          `envconfig:"CALLRELAY_INSECURE_SKIP_SIGNATURE" default:"false"`
	// Events (docs/events.md): the instance's endpoints, comma-separated; the whsec_ secret
	// that signs them; whether private addresses may be reached.
	EventWebhooks     []string `envconfig:"CALLRELAY_EVENT_WEBHOOKS"`
	EventSecret       Secret   `envconfig:"CALLRELAY_EVENT_SECRET"`
	EventAllowPrivate bool     `envconfig:"CALLRELAY_EVENT_ALLOW_PRIVATE" default:"false"`
	// Recordings (issue 19): callrelay's store (file:///dir or s3://bucket?region=…; empty:
	// none, the audio stays at Twilio), and how many days voicemail audio and transcripts, and
	// call timelines, are kept (0: forever).
	RecordingsURL         string `envconfig:"CALLRELAY_RECORDINGS_URL"`
	RetentionDays         int    `envconfig:"CALLRELAY_RETENTION_DAYS" default:"90"`
	TimelineRetentionDays int    `envconfig:"CALLRELAY_TIMELINE_RETENTION_DAYS" default:"365"`
}

// Secret is a string that never prints: a Config can be logged whole.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// LogValue keeps the secret out of structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps the secret out of JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// URL is an absolute http(s) URL read from the environment.
type URL struct{ *url.URL }

// Decode implements envconfig.Decoder.
func (u *URL) Decode(value string) error {
	if value == "" {
		return nil
	}
	p, err := url.Parse(value)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", value)
	}
	if p.RawQuery != "" || p.Fragment != "" || p.User != nil {
		return fmt.Errorf("%q must have no query, fragment or credentials", value)
	}
	u.URL = p
	return nil
}

func (u URL) String() string {
	if u.URL == nil {
		return ""
	}
	return u.URL.String()
}

// Zone is an IANA time zone name read from the environment: the zone owners read times in
// unless their number's routing names one.
type Zone struct{ *time.Location }

// Decode implements envconfig.Decoder.
func (z *Zone) Decode(value string) error {
	if value == "" {
		return nil
	}
	// "Local" would be the server's zone, whatever the container happens to have.
	if value == "Local" || len(value) > 64 {
		return fmt.Errorf("%q is not an IANA time zone name like Europe/Paris", value)
	}
	loc, err := time.LoadLocation(value)
	if err != nil {
		return fmt.Errorf("%q is not an IANA time zone name like Europe/Paris", value)
	}
	z.Location = loc
	return nil
}

func (z Zone) String() string {
	if z.Location == nil {
		return "UTC"
	}
	return z.Location.String()
}

// Load reads the configuration from the environment. An error names the variable at fault, in
// one line, so that a bad deployment says what to fix.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return Config{}, fmt.Errorf("config: %s: invalid value %q: %v", pe.KeyName, pe.Value, unwrapAll(pe.Err))
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func unwrapAll(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func (c *Config) validate() error {
	if c.Addr == "" {
		return errors.New("config: CALLRELAY_ADDR: must not be empty")
	}
	// envconfig applies a default only to an unset variable, not an empty one.
	if c.PublicURL.URL == nil {
		return errors.New("config: CALLRELAY_PUBLIC_URL: must not be empty (default http://localhost:8080 when unset)")
	}
	if c.TwilioAPIURL.URL == nil {
		return errors.New("config: TWILIO_API_URL: must not be empty (default https://api.twilio.com when unset)")
	}
	if c.TwilioAuthToken == "" && !c.InsecureSkipSignature {
		return errors.New("config: TWILIO_AUTH_TOKEN: required to check X-Twilio-Signature (set CALLRELAY_INSECURE_SKIP_SIGNATURE=true for local development only)")
	}
	if c.TimeZone.Location == nil {
		c.TimeZone.Location = time.UTC // set but empty
	}
	// A display name is welcome ("Voicemail <vm@example.com>"); anything else mail clients
	// would show oddly, or SMTP servers refuse, is refused here rather than at the first email.
	if len(c.MailFrom) > 320 {
		return errors.New("config: CALLRELAY_MAIL_FROM: must be at most 320 characters")
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		return fmt.Errorf("config: CALLRELAY_MAIL_FROM: %q is not an address like vm@example.com or Voicemail <vm@example.com>", c.MailFrom)
	}
	if c.TranscriptWait <= 0 {
		return errors.New("config: CALLRELAY_TRANSCRIPT_WAIT: must be positive")
	}
	if c.MissedCallDelay < time.Second || c.MissedCallDelay > time.Hour {
		return errors.New("config: CALLRELAY_MISSED_CALL_DELAY: must be between 1s and 1h")
	}
	if c.SMTPURL != "" {
		u, err := url.Parse(c.SMTPURL.Value())
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			return errors.New("config: SMTP_URL: must look like smtp://user:pass@host:port or smtps://…")
		}
	}
	if c.DatabaseURL == "" {
		return errors.New("config: DATABASE_URL: required (make run sets one up locally)")
	}
	if _, err := pgxpool.ParseConfig(c.DatabaseURL.Value()); err != nil {
		// The parser's message may quote the URL, password included: say less.
		return errors.New("config: DATABASE_URL: not a valid PostgreSQL URL or DSN")
	}
	if err := c.validateEvents(); err != nil {
		return err
	}
	if err := c.validateRecordings(); err != nil {
		return err
	}
	if c.LinkSecret == "" && c.TwilioAuthToken != "" {
		// Derived, not the token itself: a leaked link key must not sign webhooks.
		m := hmac.New(sha256.New, []byte(c.TwilioAuthToken))
		m.Write([]byte("callrelay voicemail links"))
		c.LinkSecret = Secret(fmt.Sprintf("%x", m.Sum(nil)))
	}
	return nil
}

func (c *Config) validateRecordings() error {
	if c.RecordingsURL != "" {
		u, err := url.Parse(c.RecordingsURL)
		switch {
		case err != nil:
			return errors.New("config: CALLRELAY_RECORDINGS_URL: not a URL")
		case u.Scheme == "file" && (u.Path == "" || u.Host != ""):
			return errors.New("config: CALLRELAY_RECORDINGS_URL: a file URL needs an absolute path, like file:///var/lib/callrelay/recordings")
		case u.Scheme == "s3" && u.Host == "":
			return errors.New("config: CALLRELAY_RECORDINGS_URL: an s3 URL names its bucket, like s3://bucket?region=eu-west-1")
		case u.Scheme != "file" && u.Scheme != "s3":
			return errors.New("config: CALLRELAY_RECORDINGS_URL: must be file:///path or s3://bucket?region=…")
		}
	}
	if c.RetentionDays < 0 || c.RetentionDays > 36500 {
		return errors.New("config: CALLRELAY_RETENTION_DAYS: must be between 0 (keep forever) and 36500")
	}
	if c.TimelineRetentionDays < 0 || c.TimelineRetentionDays > 36500 {
		return errors.New("config: CALLRELAY_TIMELINE_RETENTION_DAYS: must be between 0 (keep forever) and 36500")
	}
	return nil
}
