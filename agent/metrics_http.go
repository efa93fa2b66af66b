package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Collector descriptions, named mamori_agent_<name>_<unit>.
var (
	descModuleUp      = prometheus.NewDesc("mamori_agent_module_up", "1 when the module is running, 0 otherwise, by module and state.", []string{"module", "state"}, nil)
	descModuleCounter = prometheus.NewDesc("mamori_agent_module_counter", "Counters a module reports in its status.", []string{"module", "counter"}, nil)
	descModuleRules   = prometheus.NewDesc("mamori_agent_module_rules", "Rules loaded by the module.", []string{"module"}, nil)
	descEvents        = prometheus.NewDesc("mamori_agent_events_emitted_total", "Events queued by each module.", []string{"module"}, nil)
	descQueue         = prometheus.NewDesc("mamori_agent_outbox_events", "Events waiting in the outbox.", nil, nil)
	descQueueBytes    = prometheus.NewDesc("mamori_agent_outbox_bytes", "Disk used by the outbox.", nil, nil)
	descDropped       = prometheus.NewDesc("mamori_agent_outbox_dropped_total", "Events dropped by the overflow policy.", nil, nil)
	descUploaded      = prometheus.NewDesc("mamori_agent_events_uploaded_total", "Events the manager acknowledged.", nil, nil)
	descRejected      = prometheus.NewDesc("mamori_agent_events_rejected_total", "Events the manager rejected.", nil, nil)
	descUploadErr     = prometheus.NewDesc("mamori_agent_upload_errors_total", "Failed upload attempts.", nil, nil)
	descHeartbeats    = prometheus.NewDesc("mamori_agent_heartbeats_total", "Heartbeats answered by the manager.", nil, nil)
	descContact       = prometheus.NewDesc("mamori_agent_last_contact_timestamp_seconds", "Time of the last successful exchange with the manager.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descModuleUp, descModuleCounter, descModuleRules, descEvents, descQueue, descQueueBytes, descDropped, descUploaded, descRejected, descUploadErr, descHeartbeats, descContact} {
		ch <- d
	}
}

// Collect implements prometheus.Collector from a fresh Status.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.a.Status()
	for _, ms := range s.Modules {
		up := 0.0
		if ms.State == StateRunning {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descModuleUp, prometheus.GaugeValue, up, ms.Name, string(ms.State))
		ch <- prometheus.MustNewConstMetric(descModuleRules, prometheus.GaugeValue, float64(ms.RuleCount), ms.Name)
		for k, v := range ms.Counters {
			ch <- prometheus.MustNewConstMetric(descModuleCounter, prometheus.UntypedValue, float64(v), ms.Name, k)
		}
	}
	m.mu.Lock()
	for mod, n := range m.events {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(n), mod)
	}
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(s.QueueDepth))
	ch <- prometheus.MustNewConstMetric(descQueueBytes, prometheus.GaugeValue, float64(s.QueueBytes))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(descUploaded, prometheus.CounterValue, float64(m.uploaded.Load()))
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(m.rejected.Load()))
	ch <- prometheus.MustNewConstMetric(descUploadErr, prometheus.CounterValue, float64(m.uploadErrors.Load()))
	ch <- prometheus.MustNewConstMetric(descHeartbeats, prometheus.CounterValue, float64(m.heartbeats.Load()))
	if !s.LastContact.IsZero() {
		ch <- prometheus.MustNewConstMetric(descContact, prometheus.GaugeValue, float64(s.LastContact.UnixNano())/1e9)
	}
}

// metricsLoop serves /metrics on cfg.MetricsListen until ctx ends.
func (a *Agent) metricsLoop(ctx context.Context) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", a.cfg.MetricsListen)
	if err != nil {
		a.log.Error("metrics endpoint", "err", err)
		return
	}
	a.mu.Lock()
	a.metricsAddr = ln.Addr().String()
	a.mu.Unlock()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("metrics endpoint", "err", err)
	}
}

// MetricsAddr is the address the metrics endpoint listens on, once up.
func (a *Agent) MetricsAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.metricsAddr
}
