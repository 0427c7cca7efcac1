package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/server"
)

// audioHandler is a second server over s's database and media stand-in, with the given
// AudioStall: s's own handler keeps the default.
func audioHandler(t testing.TB, s *testServer, stall time.Duration) http.Handler {
	t.Helper()
	return audioHandlerLogging(t, s, stall, io.Discard)
}

// audioHandlerLogging is audioHandler, logging (JSON) to logs.
func audioHandlerLogging(t testing.TB, s *testServer, stall time.Duration, logs io.Writer) http.Handler {
	t.Helper()
	apiURL, err := url.Parse(s.media.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return server.NewServer(server.Deps{
		Logger:     slog.New(slog.NewJSONHandler(logs, nil)),
		Config:     s.cfg,
		DB:         s.db,
		Registry:   prometheus.NewRegistry(),
		Media:      recording.NewFetcher(apiURL, accountSID, authToken, nil),
		Links:      s.links,
		Conference: s.conf,
		AudioStall: stall,
	})
}

// startSmallBuffers serves h over real TCP with small socket send buffers, so that a client that
// stops reading blocks the handler's writes soon.
func startSmallBuffers(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			c.(*net.TCPConn).SetWriteBuffer(8 << 10)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// rawGet sends GET path and reads the answer's headers only: the caller decides how much of the
// body to read, if any. (Its receive buffer is left alone: shrinking it once connected makes the
// kernel drop segments it has advertised room for, and the stream stalls on retransmissions.)
func rawGet(t testing.TB, srv *httptest.Server, path string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // before srv.Close: it waits for the handler
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: relay.example.com\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4<<10), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	c.SetDeadline(time.Time{})
	return c, resp
}

// audioLink is the path and query of voicemail id's signed public link.
func audioLink(s *testServer, id string) string {
	return strings.TrimPrefix(s.links.URL(id), publicURL)
}

func newVoicemail(t testing.TB, s *testServer, callSid string, n, seconds int) {
	t.Helper()
	toVoicemail(t, s, callSid)
	recordingStatus(t, s, callSid, recSid(n), "completed", seconds)
}

// TestAudio_OnlyAudio: what Twilio answers for a recording reaches the owner (stream or email)
// only when it is MP3 or WAV; issue 14's JSON (the account's calls, fetched through a redirect)
// was mailed as voicemail-17.mp3 and served by the public link as application/json.
func TestAudio_OnlyAudio(t *testing.T) {
	const secret = `{"calls":[{"sid":"CA0123","to":"+15551230000"}]}`
	smtp := mailtest.Start(t)
	m := newMediaStandInWith(t, func(w http.ResponseWriter, r *http.Request, sid string) bool {
		switch sid {
		case recSid(780):
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, secret)
		case recSid(781):
			w.Header().Set("Content-Type", "audio/x-wav")
			io.WriteString(w, "RIFF\x24\x00\x00\x00WAVEfmt ")
		default:
			return false
		}
		return true
	})
	s := newTestServer(t, withMedia(m), withMail(smtp.URL()))
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, "CA00000000000000000000000000000780", 780, 2) // too short to transcribe: the email goes at once

	e := mailtest.Parse(t, smtp.Next(20*time.Second).Data)
	if len(e.Attachments) != 0 || !strings.Contains(e.Text, "could not be attached") {
		t.Errorf("email attachments %v, text:\n%s\nwant none and a note that the recording could not be attached", e.ContentType, e.Text)
	}

	rec := s.api(http.MethodGet, "/api/voicemails/1/audio", "")
	if rec.Code != http.StatusBadGateway || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") ||
		strings.Contains(rec.Body.String(), "CA0123") || !strings.Contains(rec.Body.String(), "MP3 or WAV") {
		t.Errorf("ops audio: %d %q %s; want 502 with our JSON error, not Twilio's answer", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("ops audio error: X-Content-Type-Options %q, want nosniff", got)
	}

	rec = httptest.NewRecorder()
	s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, audioLink(s, "1"), nil))
	if rec.Code != http.StatusBadGateway || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") ||
		strings.TrimSpace(rec.Body.String()) != "The recording is not available right now." {
		t.Errorf("public audio: %d %q %q; want 502 and a plain error", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("public audio error: X-Content-Type-Options %q, want nosniff", got)
	}

	// WAV is audio too, and named so.
	newVoicemail(t, s, "CA00000000000000000000000000000781", 781, 2)
	for _, path := range []string{"/api/voicemails/2/audio", audioLink(s, "2")} {
		rec := s.api(http.MethodGet, path, "")
		h := rec.Header()
		if rec.Code != http.StatusOK || h.Get("Content-Type") != "audio/x-wav" || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Content-Disposition") != `inline; filename="voicemail-2.wav"` || !strings.HasPrefix(rec.Body.String(), "RIFF") {
			t.Errorf("%s: %d %v; want 200 audio/x-wav, nosniff, voicemail-2.wav", path, rec.Code, h)
		}
	}
}

// endless streams MP3 frames until the connection is gone, then closes done.
func endless(w http.ResponseWriter, done chan<- struct{}) {
	defer close(done)
	w.Header().Set("Content-Type", "audio/mpeg")
	frame := bytes.Repeat([]byte{0xff, 0xfb, 0x90, 0x44}, 4<<10)
	for {
		if _, err := w.Write(frame); err != nil {
			return
		}
	}
}

// TestPublicAudio_StalledClient: a client that reads the headers and then nothing must not hold
// its connection, and Twilio's, for long (issue 14: 30 minutes): after AudioStall without
// progress both are closed.
func TestPublicAudio_StalledClient(t *testing.T) {
	upstreamDone := make(chan struct{})
	m := newMediaStandInWith(t, func(w http.ResponseWriter, r *http.Request, sid string) bool {
		endless(w, upstreamDone)
		return true
	})
	s := newTestServer(t, withMedia(m))
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, "CA00000000000000000000000000000790", 790, 30)
	const stall = 300 * time.Millisecond
	srv := startSmallBuffers(t, audioHandler(t, s, stall))

	c, resp := rawGet(t, srv, audioLink(s, "1"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("public audio: %d %v; want 200", resp.StatusCode, resp.Header)
	}
	if resp.Header.Get("Content-Type") != "audio/mpeg" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("public audio: %v; want audio/mpeg, nosniff", resp.Header)
	}
	// The client reads nothing more.
	start := time.Now()
	select {
	case <-upstreamDone:
		t.Logf("Twilio's connection closed %v after the client stopped reading (stall %v)", time.Since(start).Round(time.Millisecond), stall)
	case <-time.After(10 * time.Second):
		t.Fatalf("Twilio's connection still open 10s after the client stopped reading; want it closed after about %v", stall)
	}
	// The client's connection is closed too: what the buffers held, then a cut stream.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, resp.Body)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("client connection still open after %d more bytes: %v", n, err)
	} else if err == nil {
		t.Errorf("the cut stream ended as if complete after %d more bytes", n)
	}
}

// TestPublicAudio_StalledUpstream: a download from Twilio that stops sending is cut after
// AudioStall, and the client sees a cut stream, not a short recording that ended cleanly.
func TestPublicAudio_StalledUpstream(t *testing.T) {
	first := bytes.Repeat([]byte{0xff, 0xfb, 0x90, 0x44}, 256)
	upstreamDone := make(chan struct{})
	stop := make(chan struct{})
	m := newMediaStandInWith(t, func(w http.ResponseWriter, r *http.Request, sid string) bool {
		defer close(upstreamDone)
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Write(first)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		return true
	})
	var logs lockedBuffer
	s := newTestServer(t, withMedia(m))
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, "CA00000000000000000000000000000791", 791, 30)
	srv := startSmallBuffers(t, audioHandlerLogging(t, s, 300*time.Millisecond, &logs))
	t.Cleanup(func() { close(stop) }) // before srv.Close, which waits for the handler

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+audioLink(s, "1"), nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("the first bytes never came: %v", err)
	}
	defer resp.Body.Close()
	type result struct {
		body []byte
		err  error
	}
	read := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(resp.Body)
		read <- result{b, err}
	}()
	select {
	case <-upstreamDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled download from Twilio is still open after 10s")
	}
	select {
	case got := <-read:
		if !bytes.Equal(got.body, first) || !errors.Is(got.err, io.ErrUnexpectedEOF) {
			t.Errorf("client read %d bytes, %v; want the %d sent, then io.ErrUnexpectedEOF", len(got.body), got.err, len(first))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's stream is still open after Twilio's was cut")
	}
	// The cut stream is logged like any request, as aborted (the client has seen the cut, so
	// the handler has returned).
	if !strings.Contains(logs.String(), `"msg":"request aborted"`) {
		t.Errorf("no log line for the aborted stream:\n%s", logs.String())
	}
}

// TestPublicAudio_SlowClient: the stall bound is on progress, not on the whole stream: a client
// that reads slowly but steadily gets all of a recording that takes several times AudioStall.
func TestPublicAudio_SlowClient(t *testing.T) {
	// More than the client's socket buffers hold: the server's writes follow the client's pace.
	audio := bytes.Repeat([]byte{0xff, 0xfb, 0x90, 0x44}, 2<<20) // 8 MiB
	m := newMediaStandInWith(t, func(w http.ResponseWriter, r *http.Request, sid string) bool {
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(audio)))
		w.Write(audio)
		return true
	})
	s := newTestServer(t, withMedia(m))
	s.putNumber(masked, threeTargets)
	newVoicemail(t, s, "CA00000000000000000000000000000792", 792, 30)
	const stall = 300 * time.Millisecond
	srv := startSmallBuffers(t, audioHandler(t, s, stall))

	c, resp := rawGet(t, srv, audioLink(s, "1"))
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(audio)) {
		t.Fatalf("public audio: %d, Content-Length %d; want 200, %d", resp.StatusCode, resp.ContentLength, len(audio))
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	var got bytes.Buffer
	piece := make([]byte, 16<<10)
	for {
		n, err := resp.Body.Read(piece)
		got.Write(piece[:n])
		if err != nil {
			if err != io.EOF {
				t.Fatalf("after %d bytes: %v", got.Len(), err)
			}
			break
		}
		time.Sleep(5 * time.Millisecond) // a slow reader (16 KiB per 5 ms), not a wait for work
	}
	if !bytes.Equal(got.Bytes(), audio) {
		t.Errorf("client got %d bytes, want the %d of the recording", got.Len(), len(audio))
	}
	t.Logf("read %d bytes in %v (stall bound %v)", got.Len(), time.Since(start).Round(time.Millisecond), stall)
}
