package twiliosim

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// recording is a voicemail the simulated caller left: the model's recording, with its URL and
// what the caller said. Its media is served on the REST API while the model has it.
type recording struct {
	sid, url string
	duration int
	words    string
	started  time.Time
}

// Twilio's transcriber only takes recordings longer than 2 s and shorter than 120 s.
const (
	minTranscribed = 2
	maxTranscribed = 120
)

// Delays of Twilio's post-processing, in simulated time.
const (
	recordingReady  = 1 * time.Second
	transcriptReady = 6 * time.Second
)

func (s *Sim) newRecording(c *call, duration int, words string, started time.Time) *recording {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.model.AddRecording(twiliofake.Recording{CallSid: c.sid, Duration: duration, Start: started})
	return &recording{sid: rec.Sid, duration: duration, words: words, started: started,
		url: s.cfg.APIURL + "/2010-04-01/Accounts/" + s.cfg.AccountSID + "/Recordings/" + rec.Sid}
}

// afterRecording sends what follows a recording: the recording status callback once the file
// is ready, and the transcription callback when one was asked for and Twilio would make one.
func (s *Sim) afterRecording(c *call, r *recording, v node, statusCB statusCallback) {
	base := func() map[string][]string {
		s.mu.Lock()
		defer s.mu.Unlock()
		p := c.params()
		p.Set("RecordingSid", r.sid)
		p.Set("RecordingUrl", r.url)
		return p
	}
	if statusCB.url != "" && statusCB.events["completed"] {
		s.later(recordingReady, func() {
			p := base()
			p["RecordingStatus"] = []string{"completed"}
			p["RecordingDuration"] = []string{strconv.Itoa(r.duration)}
			p["RecordingChannels"] = []string{"1"}
			p["RecordingSource"] = []string{"RecordVerb"}
			p["RecordingStartTime"] = []string{twilioTime(r.started)}
			s.callback(webhook{method: statusCB.method, url: statusCB.url, params: p, what: "recording status completed", party: c.party})
		})
	}
	cb := v.attr("transcribeCallback")
	if v.attr("transcribe") != "true" && cb == "" {
		return
	}
	outcome := s.scenario().Transcription
	switch {
	case r.duration <= minTranscribed || r.duration >= maxTranscribed:
		s.log("twilio", "no transcription: %ds is outside Twilio's 2–120 s (no transcribeCallback)", r.duration)
		return
	case outcome == TranscriptNone:
		s.log("twilio", "no transcription callback (scenario: transcription none)")
		return
	case cb == "":
		return
	}
	s.later(transcriptReady, func() {
		p := base()
		p["TranscriptionSid"] = []string{s.sid("TR")}
		p["TranscriptionStatus"] = []string{outcome}
		p["TranscriptionType"] = []string{"fast"}
		p["TranscriptionUrl"] = []string{s.cfg.APIURL + "/2010-04-01/Accounts/" + s.cfg.AccountSID + "/Recordings/" + r.sid + "/Transcriptions/" + p["TranscriptionSid"][0]}
		if outcome == TranscriptCompleted {
			p["TranscriptionText"] = []string{r.words}
		}
		s.callback(webhook{method: http.MethodPost, url: cb, params: p, what: "transcription " + outcome, party: c.party})
	})
}

var mediaPath = regexp.MustCompile(`^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Recordings/(RE[0-9a-fA-F]{32})(\.wav|\.mp3)?$`)

// serveMedia answers a recording's media as Twilio does: WAV without an extension or with
// .wav, MP3 with .mp3, with the account's basic auth. It reports whether r was a media request.
func (s *Sim) serveMedia(w http.ResponseWriter, r *http.Request) bool {
	m := mediaPath.FindStringSubmatch(r.URL.Path)
	if m == nil || r.Method != http.MethodGet {
		return false
	}
	s.mu.Lock()
	var duration int
	rec := s.model.Recording(m[2])
	if rec != nil {
		duration = rec.Duration
	}
	s.mu.Unlock()
	if user, pass, ok := r.BasicAuth(); !ok || user != s.cfg.AccountSID || pass != s.cfg.AuthToken || m[1] != s.cfg.AccountSID {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		http.Error(w, `{"code":20003,"message":"Authenticate","status":401}`, http.StatusUnauthorized)
		return true
	}
	if rec == nil {
		http.Error(w, `{"code":20404,"message":"The requested resource was not found","status":404}`, http.StatusNotFound)
		return true
	}
	var data []byte
	if m[3] == ".mp3" {
		w.Header().Set("Content-Type", "audio/mpeg")
		data = silentMP3(duration)
	} else {
		w.Header().Set("Content-Type", "audio/x-wav")
		data = toneWAV(duration)
	}
	s.log("twilio", "GET %s (recording media, %d bytes)", r.URL.Path, len(data))
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
	return true
}

// toneWAV is seconds of a quiet 440 Hz tone, 8 kHz 16-bit mono PCM: a playable stand-in for
// the caller's voice.
func toneWAV(seconds int) []byte {
	const rate = 8000
	n := max(seconds, 1) * rate
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+2*n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(rate), uint32(2 * rate), uint16(2), uint16(16)} {
		_ = binary.Write(&b, le, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(2*n))
	for i := range n {
		_ = binary.Write(&b, le, int16(3000*math.Sin(2*math.Pi*440*float64(i)/rate)))
	}
	return b.Bytes()
}

// silentMP3 is seconds of silence as MPEG-1 Layer III frames (32 kbit/s, 32 kHz, mono): each
// frame has empty side information, which decoders play as silence.
func silentMP3(seconds int) []byte {
	const frameBytes = 144 * 32000 / 32000 // 144 × bitrate / sample rate
	frames := max(seconds, 1) * 32000 / 1152
	out := make([]byte, 0, frames*frameBytes)
	for range frames {
		frame := make([]byte, frameBytes)
		copy(frame, []byte{0xFF, 0xFB, 0x18, 0xC0})
		out = append(out, frame...)
	}
	return out
}
