package twiliofake

import (
	"net/http"
	"testing"
)

// TestDeleteRecording: DeleteRecording (the spec's DELETE …/Recordings/{Sid}.json) answers 204
// for a recording the fake has, then Twilio's 20404; a SID that is not a recording's is refused
// by the spec's pattern before anything is deleted.
func TestDeleteRecording(t *testing.T) {
	f, api := start(t)
	const sid = "RE0123456789abcdef0123456789abcdef"
	f.AddRecording(sid)
	if !f.HasRecording(sid) {
		t.Fatal("AddRecording: not there")
	}
	if err := api.DeleteRecording(sid, nil); err != nil {
		t.Fatalf("DeleteRecording: %v", err)
	}
	if f.HasRecording(sid) {
		t.Error("still there after DeleteRecording")
	}
	got := f.RequestsFor("DeleteRecording")
	if len(got) != 1 || got[0].Status != http.StatusNoContent || got[0].Method != http.MethodDelete || got[0].PathParams["Sid"] != sid {
		t.Errorf("DeleteRecording requests: %+v", got)
	}
	if te := restError(t, api.DeleteRecording(sid, nil)); te.Status != http.StatusNotFound || te.Code != CodeNotFound {
		t.Errorf("DeleteRecording again: %d %d, want 404 %d", te.Status, te.Code, CodeNotFound)
	}
	f.ExpectViolations()
	f.AddRecording("CA0123456789abcdef0123456789abcdef")
	if te := restError(t, api.DeleteRecording("CA0123456789abcdef0123456789abcdef", nil)); te.Status != http.StatusBadRequest {
		t.Errorf("DeleteRecording of a call SID: %d, want 400 (the spec's RE pattern)", te.Status)
	}
	if !f.HasRecording("CA0123456789abcdef0123456789abcdef") {
		t.Error("a refused request deleted something")
	}
}
