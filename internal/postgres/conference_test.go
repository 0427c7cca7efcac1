package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

const (
	confCaller = "CAcaller"
	confSid    = "CF0000"
)

// startConferenceCall stores a conference-mode call ringing n phone targets in ring order.
func startConferenceCall(t *testing.T, db *postgres.DB, ring string, n int) {
	t.Helper()
	targets := make([]string, n)
	for i := range targets {
		targets[i] = `{"type":"phone","to":"+1555000000` + string(rune('0'+i)) + `"}`
	}
	r := mustRouting(t, `{"owner_email":"dana@example.com","mode":"conference","ring":"`+ring+`","targets":[`+strings.Join(targets, ",")+`]}`)
	ctx := context.Background()
	if db.Jobs == nil {
		db.Jobs = insertOnlyQueue(t, db)
	}
	if _, _, err := db.PutNumber(ctx, "+15551230000", r); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: confCaller, Number: "+15551230000", From: "+15559870000", CallToken: "tok"}); err != nil {
		t.Fatal(err)
	}
}

func confEvent(event, participant string, seq int) callrelay.ConferenceEvent {
	return callrelay.ConferenceEvent{CallSid: confCaller, ConferenceSid: confSid, Event: event, Participant: participant,
		Sequence: seq, At: t0.Add(time.Duration(seq) * time.Second)}
}

func record(t *testing.T, db *postgres.DB, ev callrelay.ConferenceEvent) callrelay.ConferenceResult {
	t.Helper()
	res, err := db.RecordConferenceEvent(context.Background(), ev)
	if err != nil {
		t.Fatalf("RecordConferenceEvent(%s %d): %v", ev.Event, ev.Sequence, err)
	}
	return res
}

func TestRecordConferenceEvent(t *testing.T) {
	t.Run("RingOnceOnCallerJoin", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 2)
		if res := record(t, db, confEvent(callrelay.ConferenceStart, "", 1)); !res.Known || res.Ring {
			t.Errorf("conference-start: %+v, want known, no ring", res)
		}
		if res := record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 2)); !res.New || !res.Ring {
			t.Errorf("caller join: %+v, want ring", res)
		}
		if res := record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 2)); res.New || res.Ring {
			t.Errorf("repeated caller join: %+v, want nothing new", res)
		}
		c, err := db.GetCall(context.Background(), confCaller)
		if err != nil || c.ConferenceSid == nil || *c.ConferenceSid != confSid {
			t.Fatalf("conference_sid = %v (%v), want %s", c.ConferenceSid, err, confSid)
		}
	})

	t.Run("UnknownCall", func(t *testing.T) {
		db, _ := newDB(t)
		ev := confEvent(callrelay.ParticipantJoin, "CAother", 1)
		ev.CallSid = "CAnobody"
		if res := record(t, db, ev); res.Known {
			t.Errorf("%+v, want unknown", res)
		}
	})

	t.Run("LeaveViaAPIIsNotAHangUp", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		ev := confEvent(callrelay.ParticipantLeave, confCaller, 2)
		ev.ReasonLeft = callrelay.LeftViaAPI
		if res := record(t, db, ev); res.Ended {
			t.Errorf("%+v, want the call not ended", res)
		}
		c, _ := db.GetCall(context.Background(), confCaller)
		if c.Status != callrelay.StatusRinging {
			t.Errorf("status = %s, want ringing", c.Status)
		}
	})

	t.Run("CallerHangsUpEndsCallAndLegs", func(t *testing.T) {
		db, _ := newDB(t)
		ctx := context.Background()
		startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		claimAndCreate(t, db, "CAleg1")
		ev := confEvent(callrelay.ParticipantLeave, confCaller, 2)
		ev.ReasonLeft = "participant_hung_up"
		res := record(t, db, ev)
		if !res.Ended || len(res.LiveLegs) != 1 || res.LiveLegs[0].CallSid != "CAleg1" || res.LiveLegs[0].ConferenceSid != confSid {
			t.Errorf("%+v, want ended with CAleg1 to end", res)
		}
		c, _ := db.GetCall(ctx, confCaller)
		if c.Status != callrelay.StatusCompleted || c.EndedAt == nil {
			t.Errorf("status %s ended %v, want completed", c.Status, c.EndedAt)
		}
	})

	t.Run("TwilioHoldEventsSetHoldState", func(t *testing.T) {
		db, _ := newDB(t)
		ctx := context.Background()
		startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		hold := confEvent(callrelay.ParticipantHold, confCaller, 3)
		hold.Hold = true
		record(t, db, hold)
		record(t, db, confEvent(callrelay.ParticipantUnhold, confCaller, 2)) // older: ignored
		c, err := db.GetCall(ctx, confCaller)
		if err != nil || !c.Hold.Caller || c.Hold.Callee {
			t.Errorf("hold = %+v (%v), want the caller held as Twilio said last", c.Hold, err)
		}
	})

	t.Run("OutOfOrderHoldAndLeave", func(t *testing.T) {
		db, _ := newDB(t)
		ctx := context.Background()
		startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
		// Leave (seq 4) arrives before join (2) and hold (3): the participant stays left.
		for _, ev := range []callrelay.ConferenceEvent{
			confEvent(callrelay.ParticipantLeave, "CAleg1", 4),
			confEvent(callrelay.ParticipantJoin, "CAleg1", 2),
			confEvent(callrelay.ParticipantHold, "CAleg1", 3),
		} {
			record(t, db, ev)
		}
		var joined, left bool
		var held bool
		if err := db.Pool().QueryRow(ctx, `SELECT joined_at IS NOT NULL, left_at IS NOT NULL, held FROM participants WHERE call_sid = 'CAleg1'`).
			Scan(&joined, &left, &held); err != nil {
			t.Fatal(err)
		}
		if !joined || !left || held {
			t.Errorf("joined %v left %v held %v, want joined, left, not held", joined, left, held)
		}

		// Unhold (seq 6) before hold (5): the newer one wins.
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		record(t, db, confEvent(callrelay.ParticipantUnhold, confCaller, 6))
		hold := confEvent(callrelay.ParticipantHold, confCaller, 5)
		hold.Hold = true
		record(t, db, hold)
		if err := db.Pool().QueryRow(ctx, `SELECT held FROM participants WHERE call_sid = $1`, confCaller).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held {
			t.Error("a late participant-hold overrode a newer participant-unhold")
		}
	})
}

// claimAndCreate claims the next target and records its leg as created.
func claimAndCreate(t *testing.T, db *postgres.DB, leg string) callrelay.RingTarget {
	t.Helper()
	ctx := context.Background()
	rt, ok, err := db.ClaimTarget(ctx, confCaller)
	if err != nil || !ok {
		t.Fatalf("ClaimTarget = %v, %v; want a target", ok, err)
	}
	if _, err := db.FinishTarget(ctx, confCaller, callrelay.RingResult{Index: rt.Index, Target: rt.Target.String(),
		Label: callrelay.CalleeLabel(rt.Index), Leg: leg}); err != nil {
		t.Fatal(err)
	}
	return rt
}

func legStatus(t *testing.T, db *postgres.DB, leg, status string, seq int) callrelay.LegResult {
	t.Helper()
	res, err := db.RecordLegProgress(context.Background(), callrelay.LegProgress{CallSid: leg, ParentCallSid: confCaller,
		Status: status, Sequence: seq, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestClaimTarget(t *testing.T) {
	ctx := context.Background()
	t.Run("NotBeforeTheCallerJoined", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 2)
		if _, ok, err := db.ClaimTarget(ctx, confCaller); ok || err != nil {
			t.Errorf("ClaimTarget = %v, %v; want nothing before the conference exists", ok, err)
		}
	})

	t.Run("SimultaneousEachOnceAcrossReplicas", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 3)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		var mu sync.Mutex
		claimed := map[int]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					rt, ok, err := db.ClaimTarget(ctx, confCaller)
					if err != nil {
						t.Error(err)
						return
					}
					if !ok {
						return
					}
					mu.Lock()
					claimed[rt.Index]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != 3 || claimed[0] != 1 || claimed[1] != 1 || claimed[2] != 1 {
			t.Errorf("claims by target = %v, want each of 0, 1, 2 once", claimed)
		}
	})

	t.Run("SequentialWaitsForTheLegToEnd", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSequential, 2)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		if rt := claimAndCreate(t, db, "CAleg1"); rt.Index != 0 || rt.ConferenceSid != confSid || rt.CallToken != "tok" || rt.From != "+15559870000" {
			t.Errorf("first claim = %+v", rt)
		}
		if _, ok, _ := db.ClaimTarget(ctx, confCaller); ok {
			t.Fatal("claimed the second target while the first rings")
		}
		legStatus(t, db, "CAleg1", "no-answer", 1)
		rt, ok, err := db.ClaimTarget(ctx, confCaller)
		if err != nil || !ok || rt.Index != 1 {
			t.Fatalf("after no-answer: %+v %v %v, want target 1", rt, ok, err)
		}
	})

	t.Run("NotAfterAnAnswer", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 2)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		claimAndCreate(t, db, "CAleg1")
		if res := legStatus(t, db, "CAleg1", "in-progress", 1); res.Callee != "CAleg1" || res.Mode != callrelay.ModeConference {
			t.Errorf("answer: %+v, want CAleg1 the callee", res)
		}
		if _, ok, _ := db.ClaimTarget(ctx, confCaller); ok {
			t.Error("claimed a target after someone answered")
		}
		// A second answer does not take the call over.
		if res := legStatus(t, db, "CAleg2", "in-progress", 1); res.Callee != "CAleg1" {
			t.Errorf("second answer: callee %q, want CAleg1", res.Callee)
		}
	})
}

func TestStopRinging(t *testing.T) {
	ctx := context.Background()
	t.Run("OnlyWhenEveryTargetEnded", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 2)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		claimAndCreate(t, db, "CAleg1")
		legStatus(t, db, "CAleg1", "no-answer", 1)
		if moved, _, err := db.StopRinging(ctx, confCaller, false, "nobody answered"); moved || err != nil {
			t.Fatalf("StopRinging with a target left = %v, %v; want false", moved, err)
		}
		claimAndCreate(t, db, "CAleg2")
		if moved, _, _ := db.StopRinging(ctx, confCaller, false, "nobody answered"); moved {
			t.Fatal("StopRinging while CAleg2 rings")
		}
		legStatus(t, db, "CAleg2", "busy", 1)
		var wg sync.WaitGroup
		var mu sync.Mutex
		movedCount := 0
		for range 4 {
			wg.Go(func() {
				moved, _, err := db.StopRinging(ctx, confCaller, false, "nobody answered")
				if err != nil {
					t.Error(err)
				}
				if moved {
					mu.Lock()
					movedCount++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if movedCount != 1 {
			t.Errorf("%d requests moved the call, want exactly 1", movedCount)
		}
		c, _ := db.GetCall(ctx, confCaller)
		if c.Status != callrelay.StatusVoicemail {
			t.Errorf("status = %s, want voicemail", c.Status)
		}
	})

	t.Run("GiveUpEndsLiveLegs", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 3)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		claimAndCreate(t, db, "CAleg1")
		moved, live, err := db.StopRinging(ctx, confCaller, true, "Twilio unreachable")
		if !moved || err != nil || len(live) != 1 || live[0].CallSid != "CAleg1" {
			t.Errorf("StopRinging(giveUp) = %v %+v %v, want moved with CAleg1 live", moved, live, err)
		}
	})

	t.Run("NotAfterAnAnswer", func(t *testing.T) {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		claimAndCreate(t, db, "CAleg1")
		legStatus(t, db, "CAleg1", "in-progress", 1)
		legStatus(t, db, "CAleg1", "completed", 2)
		if moved, _, _ := db.StopRinging(ctx, confCaller, true, "x"); moved {
			t.Error("a call someone answered went to voicemail")
		}
	})
}

// A duplicated answered callback, delivered concurrently, must name the same winner both
// times: neither may pass for a late answer (which would hang the callee up).
func TestRecordLegProgress_ConcurrentDuplicateAnswer(t *testing.T) {
	for i := range 20 {
		db, _ := newDB(t)
		startConferenceCall(t, db, callrelay.RingSimultaneous, 1)
		record(t, db, confEvent(callrelay.ParticipantJoin, confCaller, 1))
		leg := fmt.Sprintf("CA%032x", 0xabc0+i)
		claimAndCreate(t, db, leg)
		results := make([]callrelay.LegResult, 8)
		var wg sync.WaitGroup
		for j := range results {
			wg.Go(func() { results[j] = legStatus(t, db, leg, callrelay.StatusInProgress, 2) })
		}
		wg.Wait()
		for j, res := range results {
			if res.Callee != leg {
				t.Fatalf("run %d: callback %d: Callee = %q, want %q (the leg that answered)", i, j, res.Callee, leg)
			}
		}
	}
}
