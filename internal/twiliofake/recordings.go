package twiliofake

import (
	"net/http"
	"time"
)

// Recordings: the fake knows the recordings a test adds (AddRecording) and deletes them as
// Twilio does (DeleteRecording: 204, then 404 for a recording that is gone). Their media is not
// served here: the spec describes only the .json resource, and a test's media server can ask
// HasRecording whether to serve the audio or a 404.

type recording struct {
	sid     string
	created time.Time
}

func init() {
	handlers["DeleteRecording"] = (*Fake).deleteRecording
}

// AddRecording makes a recording (an RE… SID) exist at the fake.
func (f *Fake) AddRecording(sid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recordings == nil {
		f.recordings = map[string]*recording{}
	}
	f.recordings[sid] = &recording{sid: sid, created: f.now()}
}

// HasRecording reports whether a recording exists (added and not deleted).
func (f *Fake) HasRecording(sid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recordings[sid] != nil
}

// DeleteRecording removes a recording: "Delete a recording from your account" (the spec), 204
// with no body, and Twilio's 20404 for one that does not exist (or no longer does).
func (f *Fake) deleteRecording(req *Request) (int, any) {
	sid := req.PathParams["Sid"]
	if f.recordings[sid] == nil {
		return f.notFound(req)
	}
	delete(f.recordings, sid)
	return http.StatusNoContent, nil
}
