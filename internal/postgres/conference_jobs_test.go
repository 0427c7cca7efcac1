package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// confJob is a conference job's row of river_job.
type confJob struct {
	CallSid     string
	Queue       string
	State       string
	ScheduledAt time.Time
	MaxAttempts int
}

func confJobs(t *testing.T, db *postgres.DB, kind string) []confJob {
	t.Helper()
	rows, err := db.Pool().Query(context.Background(), `
		SELECT args, queue, state, scheduled_at, max_attempts FROM river_job WHERE kind = $1 ORDER BY id`, kind)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []confJob
	for rows.Next() {
		var args []byte
		var j confJob
		if err := rows.Scan(&args, &j.Queue, &j.State, &j.ScheduledAt, &j.MaxAttempts); err != nil {
			t.Fatal(err)
		}
		var a struct {
			CallSid string `json:"call_sid"`
		}
		if err := json.Unmarshal(args, &a); err != nil {
			t.Fatal(err)
		}
		j.CallSid = a.CallSid
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return jobs
}

// refusingJobs refuses every insert while refuse is set, as a queue whose table is
// unreachable would.
type refusingJobs struct {
	postgres.Jobs
	refuse atomic.Bool
}

func (j *refusingJobs) InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	if j.refuse.Load() {
		return nil, errors.New("insert refused")
	}
	return j.Jobs.InsertTx(ctx, tx, args, opts)
}

func TestConferenceJobs(t *testing.T) {
	ctx := context.Background()

	// The owner is dialled by a job written with the caller's join: one job, whatever the
	// callbacks that repeat or follow.
	t.Run("RingJobWithTheJoin", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 2)
		if n := len(confJobs(t, db, callrelay.RingOwner{}.Kind())); n != 0 {
			t.Fatalf("%d ring jobs before the caller joined, want 0", n)
		}
		record(t, db, confEvent(callrelay.ConferenceStart, "", 1))
		join := confEvent(callrelay.ParticipantJoin, confCaller, 2)
		if res := record(t, db, join); !res.Ring {
			t.Fatalf("caller join: %+v, want ring", res)
		}
		record(t, db, join)                                                // Twilio's retry
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 3)) // a second join
		jobs := confJobs(t, db, callrelay.RingOwner{}.Kind())
		if len(jobs) != 1 || jobs[0].CallSid != confCaller || jobs[0].State != "available" || jobs[0].Queue != callrelay.ConferenceQueue {
			t.Fatalf("ring jobs = %+v, want one available for %s in the conference queue", jobs, confCaller)
		}
	})

	// A join whose job cannot be written is not recorded either: Twilio's retry (or the
	// spool) applies it again, and then the owner is dialled.
	t.Run("NoJoinWithoutItsJob", func(t *testing.T) {
		var jobs *refusingJobs
		db, _ := newDB(t, func(o *postgres.Options) {
			jobs = &refusingJobs{Jobs: o.Jobs}
			o.Jobs = jobs
		})
		startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
		jobs.refuse.Store(true)
		join := confEvent(callrelay.ParticipantJoin, confCaller, 1)
		if _, err := db.RecordConferenceEvent(ctx, join); err == nil {
			t.Fatal("join recorded without its ring job")
		}
		if n := countRows(t, db, `SELECT count(*) FROM participants`); n != 0 {
			t.Errorf("%d participants after the failed join, want 0", n)
		}
		jobs.refuse.Store(false)
		if res := record(t, db, join); !res.Ring {
			t.Errorf("the join applied again: %+v, want ring", res)
		}
		if n := len(confJobs(t, db, callrelay.RingOwner{}.Kind())); n != 1 {
			t.Errorf("%d ring jobs, want 1", n)
		}
	})

	t.Run("WatchOncePerCall", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
		for range 2 { // the voice webhook repeated
			if err := db.WatchConference(ctx, confCaller, 40*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		jobs := confJobs(t, db, callrelay.ConferenceDeadline{}.Kind())
		if len(jobs) != 1 || jobs[0].CallSid != confCaller || jobs[0].State != "scheduled" || jobs[0].Queue != callrelay.ConferenceQueue ||
			!jobs[0].ScheduledAt.Equal(t0.Add(40*time.Second)) {
			t.Fatalf("deadline jobs = %+v, want one scheduled at %v (the store's clock + 40s)", jobs, t0.Add(40*time.Second))
		}
	})

	t.Run("WatchConferenceCall", func(t *testing.T) {
		db, advance := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 2)
		w, err := db.WatchConferenceCall(ctx, confCaller)
		if err != nil {
			t.Fatal(err)
		}
		if !w.Known || !w.Waiting || w.JoinedAt != nil || w.Claimed != 0 || w.LastRing != nil || !w.StartedAt.Equal(t0) || len(w.Routing.Targets) != 2 {
			t.Fatalf("before the join: %+v, want waiting since %v, no join, nothing ringing", w, t0)
		}
		join := confEvent(callrelay.ParticipantJoin, confCaller, 1)
		record(t, db, join)
		advance(3 * time.Second)
		claimAndCreate(t, db, "CAleg1")
		w, _ = db.WatchConferenceCall(ctx, confCaller)
		if !w.Waiting || w.JoinedAt == nil || !w.JoinedAt.Equal(join.At) || w.Claimed != 1 || w.LastRing == nil || !w.LastRing.Equal(t0.Add(3*time.Second)) {
			t.Fatalf("ringing: %+v, want joined at %v, a leg ringing since %v", w, join.At, t0.Add(3*time.Second))
		}
		legStatus(t, db, "CAleg1", "no-answer", 1)
		if w, _ = db.WatchConferenceCall(ctx, confCaller); !w.Waiting || w.LastRing != nil {
			t.Fatalf("after no-answer: %+v, want waiting, nothing ringing", w)
		}
		claimAndCreate(t, db, "CAleg2")
		legStatus(t, db, "CAleg2", callrelay.StatusInProgress, 1)
		if w, _ = db.WatchConferenceCall(ctx, confCaller); w.Waiting {
			t.Errorf("after an answer: %+v, want not waiting", w)
		}
		if w, _ = db.WatchConferenceCall(ctx, "CAunknown"); w.Known {
			t.Errorf("unknown call: %+v", w)
		}
	})

	// A screened leg (called with its screen) that answered is still ringing while its screen
	// runs, and no answer once its screen hung it up: the deadline keeps watching and the call
	// goes to voicemail. Accepted, it took the call.
	for _, accept := range []bool{false, true} {
		t.Run(map[bool]string{false: "ScreenedLegDeclines", true: "ScreenedLegAccepts"}[accept], func(t *testing.T) {
			db, _ := newDB(t)
			startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
			record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
			rt, ok, err := db.ClaimTarget(ctx, confCaller)
			if err != nil || !ok {
				t.Fatalf("ClaimTarget = %v, %v", ok, err)
			}
			if _, err := db.FinishTarget(ctx, confCaller, callrelay.RingResult{Index: rt.Index, Target: rt.Target.String(),
				Label: callrelay.CalleeLabel(rt.Index), Leg: "CAscreened", Screen: callrelay.ScreenPress}); err != nil {
				t.Fatal(err)
			}
			if res := legStatus(t, db, "CAscreened", callrelay.StatusInProgress, 1); res.Callee != "" || !res.Screened {
				t.Fatalf("answered: %+v, want screened, no callee", res)
			}
			w, _ := db.WatchConferenceCall(ctx, confCaller)
			if !w.Waiting || w.LastRing == nil {
				t.Fatalf("in its screen: %+v, want waiting with a leg ringing", w)
			}
			if moved, _, err := db.StopRinging(ctx, confCaller, false, "nobody answered"); moved || err != nil {
				t.Fatalf("StopRinging while the screen runs = %v, %v; want not moved", moved, err)
			}
			outcome := postgres.ScreenDeclined
			if accept {
				outcome = postgres.ScreenAccepted
			}
			if _, err := db.RecordScreen(ctx, callrelay.ScreenEvent{CallSid: "CAscreened", ParentCallSid: confCaller,
				TargetIndex: 0, Screen: callrelay.ScreenPress, Outcome: outcome, Digits: "2", At: t0}); err != nil {
				t.Fatal(err)
			}
			if !accept {
				legStatus(t, db, "CAscreened", callrelay.StatusCompleted, 2)
			}
			w, _ = db.WatchConferenceCall(ctx, confCaller)
			moved, _, err := db.StopRinging(ctx, confCaller, false, "nobody answered")
			if err != nil {
				t.Fatal(err)
			}
			if w.Waiting == accept || moved == accept {
				t.Errorf("accepted %v: waiting %v, moved to voicemail %v; want both %v", accept, w.Waiting, moved, !accept)
			}
		})
	}
}
