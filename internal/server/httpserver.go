package server

import (
	"log"
	"net/http"
	"time"
)

// Limits of the listener. Twilio gives a webhook 15 s in all: a slow client (slowloris) must
// not hold a connection, or a goroutine, longer than that.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second // headers and body
	WriteTimeout      = 15 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 64 << 10 // more answers 431
)

// NewHTTPServer returns the http.Server that serves h on addr with the limits above, so that
// the binary and the tests of those limits build the same server. errorLog gets net/http's own
// complaints (TLS handshakes, panics past the handler); nil means the log package's default.
func NewHTTPServer(addr string, h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog,
	}
}
