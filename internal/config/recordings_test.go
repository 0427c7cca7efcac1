package config_test

import (
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/config"
)

func TestLoad_Recordings(t *testing.T) {
	rec := map[string]string{"CALLRELAY_RECORDINGS_URL": "", "CALLRELAY_RETENTION_DAYS": "", "CALLRELAY_TIMELINE_RETENTION_DAYS": ""}
	setenv(t, rec)
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.RecordingsURL != "" || c.RetentionDays != 90 || c.TimelineRetentionDays != 365 {
		t.Errorf("defaults: %q %d %d, want none, 90, 365", c.RecordingsURL, c.RetentionDays, c.TimelineRetentionDays)
	}
	for _, ok := range []string{"file:///var/lib/callrelay/recordings", "s3://bucket?region=eu-west-1",
		"s3://bucket?region=us-east-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000&use_path_style=true"} {
		rec["CALLRELAY_RECORDINGS_URL"] = ok
		setenv(t, rec)
		if c, err := config.Load(); err != nil || c.RecordingsURL != ok {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for name, bad := range map[string]string{
		"CALLRELAY_RECORDINGS_URL":          "file://relative/dir",
		"CALLRELAY_RETENTION_DAYS":          "-1",
		"CALLRELAY_TIMELINE_RETENTION_DAYS": "36501",
	} {
		over := map[string]string{"CALLRELAY_RECORDINGS_URL": "", "CALLRELAY_RETENTION_DAYS": "", "CALLRELAY_TIMELINE_RETENTION_DAYS": "", name: bad}
		setenv(t, over)
		if _, err := config.Load(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v, want an error naming it", name, bad, err)
		}
	}
	for _, bad := range []string{"gs://bucket", "s3://", "/var/lib/callrelay"} {
		setenv(t, map[string]string{"CALLRELAY_RECORDINGS_URL": bad})
		if _, err := config.Load(); err == nil || !strings.Contains(err.Error(), "CALLRELAY_RECORDINGS_URL") {
			t.Errorf("CALLRELAY_RECORDINGS_URL=%s: %v, want an error naming it", bad, err)
		}
	}
}
