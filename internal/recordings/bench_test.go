package recordings_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// BenchmarkCopy is the copy job's work for a minute of MP3 (240,000 bytes): fetch from the
// (local) media server, write to the store, read it back and hash it, record it, delete
// Twilio's copy at the REST fake and record that. The queue is not running: each iteration
// calls the job's work on a fresh voicemail.
//
//	go test -run '^$' -bench Copy -benchtime 200x ./internal/recordings/
func BenchmarkCopy(b *testing.B) {
	for _, store := range []string{"file", "s3"} {
		b.Run(store, func(b *testing.B) {
			var url string
			if store == "file" {
				url = fileURL(filepath.Join(b.TempDir(), "recordings"))
			} else {
				url = startS3(b).url()
			}
			r := newRig(b, url)
			if err := r.queue.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			rt, err := callrelay.DecodeRouting(strings.NewReader(fmt.Sprintf(routing, "")))
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := r.db.PutNumber(ctx, number, rt); err != nil {
				b.Fatal(err)
			}
			ids := make([]int64, b.N)
			for i := range b.N {
				n := 1000 + i
				if _, err := r.db.StartCall(ctx, callrelay.InboundCall{CallSid: callSid(n), Number: number, From: caller}); err != nil {
					b.Fatal(err)
				}
				r.fake.AddRecording(recSid(n))
				vm, err := r.db.RecordRecording(ctx, callrelay.Recording{CallSid: callSid(n), RecordingSid: recSid(n), Status: "completed",
					DurationSeconds: 60, RecordingURL: r.media.URL + "/2010-04-01/Accounts/" + r.fake.AccountSID + "/Recordings/" + recSid(n)}, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = vm.ID
			}
			b.SetBytes(int64(len(r.audio)))
			b.ReportAllocs()
			b.ResetTimer()
			for _, id := range ids {
				if err := r.jobs.Copy(ctx, id, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if task := r.task(ids[len(ids)-1]); task.Audio.Copy == nil || task.Audio.TwilioDeletedAt == nil {
				b.Fatalf("last copy not done: %+v", task.Audio)
			}
		})
	}
}
