package twiliosim

import (
	"net/http"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// deleteRecording is DeleteRecording: the recording and its media are gone (204), and a
// second deletion is Twilio's 404.
func (s *Sim) deleteRecording(req twiliofake.Request) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sid := req.PathParams["Sid"]
	if s.recordings[sid] == nil {
		return notFound(req)
	}
	delete(s.recordings, sid)
	s.logLocked("twilio", "DELETE recording %s", sid)
	return http.StatusNoContent, nil
}
