package postgres

import "testing"

// What a call's routing column holds, as Postgres returns jsonb (keys reordered, spaces after
// colons and commas): docs/design.md's example (three targets) and a one-phone routing with the
// defaults applied, the most common kind. Every call webhook decodes one of these.
const (
	benchStoredDesign  = `{"mode": "direct", "ring": "simultaneous", "voice": "Polly.Joanna", "enabled": true, "targets": [{"to": "+15550001111", "type": "phone"}, {"uri": "sip:dana@pbx.example.com", "type": "sip", "region": "ie1", "headers": {"x-team": "sales"}, "password": "s3cret", "username": "dana", "transport": "tls"}, {"type": "client", "identity": "dana"}], "greeting": "Please hold while we connect you.", "language": "en-US", "caller_id": "caller", "voicemail": {"prompt": "Please leave a message after the beep.", "enabled": true, "transcribe": true, "max_length_seconds": 120}, "owner_email": "dana@example.com", "timeout_seconds": 15}`
	benchStoredMinimal = `{"mode": "direct", "ring": "simultaneous", "enabled": true, "targets": [{"to": "+15550001111", "type": "phone"}], "language": "en-US", "caller_id": "caller", "voicemail": {"enabled": true, "transcribe": true, "max_length_seconds": 120}, "owner_email": "dana@example.com", "timeout_seconds": 20}`
)

// BenchmarkDecodeStoredRouting is decodeRouting, which StartCall, RecordDialOutcome,
// StartVoicemail and CallRouting run on every webhook.
func BenchmarkDecodeStoredRouting(b *testing.B) {
	for _, c := range []struct{ name, js string }{
		{"one-phone", benchStoredMinimal},
		{"design-3-targets", benchStoredDesign},
	} {
		b.Run(c.name, func(b *testing.B) {
			data := []byte(c.js)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := decodeRouting(data)
				if err != nil || len(r.Targets) == 0 {
					b.Fatalf("decodeRouting: %v (%d targets)", err, len(r.Targets))
				}
			}
		})
	}
}
