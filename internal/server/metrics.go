package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series, registered on the registry NewServer is given
// (not the global one: tests build many servers).
type metrics struct {
	requests          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	signatureFailures *prometheus.CounterVec
	fallbacks         *prometheus.CounterVec
	spooled           *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callrelay_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "callrelay_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		signatureFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callrelay_twilio_signature_failures_total",
			Help: "Webhooks refused for a missing or wrong X-Twilio-Signature, by path.",
		}, []string{"path"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callrelay_webhook_fallbacks_total",
			Help: "Webhooks answered without the database (cached routing or apology), by route and kind.",
		}, []string{"route", "kind"}),
		spooled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callrelay_spooled_total",
			Help: "Webhooks kept in the spool because the database was unreachable, by route.",
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration, m.signatureFailures, m.fallbacks, m.spooled)
	return m
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// methodLabel is method if it is a standard one, else "other": the client names the method,
// and a series per made-up method would grow memory and /metrics without bound.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}
