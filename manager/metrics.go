package manager

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the manager's Prometheus series, on a registry of its own so
// several managers can live in one test process.
type metrics struct {
	reg              *prometheus.Registry
	agents           *prometheus.GaugeVec
	heartbeats       prometheus.Counter
	heartbeatLatency prometheus.Histogram
	events           *prometheus.CounterVec
	ingestLatency    prometheus.Histogram
	enrollments      *prometheus.CounterVec
	commandsPending  prometheus.Gauge
	requests         *prometheus.HistogramVec
	db               *prometheus.HistogramVec
	notifyQueue      func() int
	notifySuppressed func() int64 // alerts the notification throttle held back
	notifySummaries  func() int64 // summaries it sent for them
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		agents: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mamori_manager_agents", Help: "Computers by state."},
			[]string{"state"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "mamori_manager_heartbeats_total", Help: "Heartbeats served."}),
		heartbeatLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mamori_manager_heartbeat_duration_seconds",
			Help: "Heartbeat processing time, long-poll wait excluded.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mamori_manager_events_ingested_total", Help: "Uploaded events by result."},
			[]string{"result"}),
		ingestLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mamori_manager_ingest_duration_seconds",
			Help: "Event batch ingest time.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mamori_manager_enrollments_total", Help: "Enrolment attempts by result."},
			[]string{"result"}),
		commandsPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mamori_manager_commands_pending", Help: "Commands queued and not yet acknowledged (queue depth)."}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mamori_manager_http_request_duration_seconds",
			Help: "HTTP request time by route and status code.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route", "code"}),
		db: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mamori_manager_db_operation_duration_seconds",
			Help: "Database operation time.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"op"}),
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mamori_manager_notify_queue_depth", Help: "Notifications waiting to be sent."},
		func() float64 {
			if m.notifyQueue == nil {
				return 0
			}
			return float64(m.notifyQueue())
		}))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mamori_manager_notifications_suppressed_total",
		Help: "Alert notifications held back by the per-notifier, per-rule throttle (counted in a summary notification instead)."},
		func() float64 {
			if m.notifySuppressed == nil {
				return 0
			}
			return float64(m.notifySuppressed())
		}))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mamori_manager_notification_summaries_total",
		Help: "\"N more alerts suppressed\" notifications produced when a throttle window closed."},
		func() float64 {
			if m.notifySummaries == nil {
				return 0
			}
			return float64(m.notifySummaries())
		}))
	m.reg.MustRegister(m.agents, m.heartbeats, m.heartbeatLatency, m.events, m.ingestLatency, m.enrollments, m.commandsPending, m.requests, m.db,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeDB(op string, d time.Duration) {
	m.db.WithLabelValues(op).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(c int) { s.code = c; s.ResponseWriter.WriteHeader(c) }

// Flush keeps streaming responses working through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: 200}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
	})
}
