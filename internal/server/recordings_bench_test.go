package server_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkAudioRange serves the stored copy of a minute of MP3 (240,000 bytes) over real TCP
// on 127.0.0.1, through the whole router (the signed link checked, the voicemail and its copy
// read from PostgreSQL, the file store read): "range" asks for 64 KiB at a random offset as a
// seeking player does, "whole" for the file. Parallel clients.
//
//	go test -run '^$' -bench AudioRange -benchtime 3s ./internal/server/
func BenchmarkAudioRange(b *testing.B) {
	s := newTestServer(b)
	rs := newRecordingsServer(b, s)
	s.putNumber(masked, threeTargets)
	newVoicemail(b, s, "CA"+fmt.Sprintf("%032x", 950), 950, 60)
	audio := minuteOfAudio()
	rs.copyVoicemail(b, s, 1, 950, audio)
	srv := httptest.NewServer(rs.h)
	b.Cleanup(srv.Close)
	link := srv.URL + audioLink(s, "1")
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	for _, c := range []struct {
		name string
		size int
		rng  func() string
	}{
		{"range", 64 << 10, func() string {
			off := rand.IntN(len(audio) - 64<<10)
			return fmt.Sprintf("bytes=%d-%d", off, off+64<<10-1)
		}},
		{"whole", len(audio), func() string { return "" }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(c.size))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, link, nil)
					want := http.StatusOK
					if r := c.rng(); r != "" {
						req.Header.Set("Range", r)
						want = http.StatusPartialContent
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != want || n != int64(c.size) {
						b.Errorf("%d, %d bytes; want %d, %d", resp.StatusCode, n, want, c.size)
						return
					}
				}
			})
		})
	}
}
