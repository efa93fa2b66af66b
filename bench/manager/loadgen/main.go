// Command loadgen simulates many mamori agents in one process against a real
// manager: each enrols with a token (its own ECDSA key, CSR and client
// certificate), heartbeats over mTLS at an interval with jitter, fetches its
// policy when the version changes, and a subset uploads event batches. It
// prints enrolment and heartbeat latency percentiles, agents sustained,
// events ingested per second and errors, and the manager's CPU and RSS
// when given its PID. bench/manager/run.sh drives it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	url          string
	caFile       string
	token        string
	apiKey       string
	agents       int
	enrollConc   int
	interval     time.Duration
	jitter       float64
	warmup       time.Duration
	quiet        time.Duration
	ingest       time.Duration
	ingestWarmup time.Duration
	eventAgents  int
	batch        int
	fetchPolicy  bool
	pid          int
	reqTimeout   time.Duration
	idleConnTime time.Duration
	longPoll     bool
	maxWait      time.Duration
	dbPID        int
	gzip         bool
}

func main() {
	if os.Getenv("GOGC") == "" {
		// 10,000 simulated agents are a large static heap; the default
		// target made the load generator collect it constantly during
		// ingest and steal the manager's CPU.
		debug.SetGCPercent(400)
	}
	var o options
	flag.StringVar(&o.url, "url", "https://127.0.0.1:8443", "manager base URL")
	flag.StringVar(&o.caFile, "ca", "", "PEM file of the manager's CA (the data directory's ca.crt)")
	flag.StringVar(&o.token, "token", "", "enrolment token (or -apikey to create one)")
	flag.StringVar(&o.apiKey, "apikey", "", "API key used to create an enrolment token when -token is empty")
	flag.IntVar(&o.agents, "agents", 1000, "agents to simulate")
	flag.IntVar(&o.enrollConc, "enroll-concurrency", 16, "enrolments in flight")
	flag.DurationVar(&o.interval, "heartbeat", 60*time.Second, "heartbeat interval")
	flag.Float64Var(&o.jitter, "jitter", 0.1, "heartbeat jitter as a fraction of the interval (±)")
	flag.DurationVar(&o.warmup, "warmup", 0, "time after enrolment before measuring (default: two intervals: every agent connects and fetches its policy in the first, the manager drains that backlog in the second)")
	flag.DurationVar(&o.quiet, "quiet", 0, "heartbeat-only measurement window (default: two intervals)")
	flag.DurationVar(&o.ingest, "ingest", 30*time.Second, "window with event uploads running (0: none)")
	flag.DurationVar(&o.ingestWarmup, "ingest-warmup", 0, "uploads run this long, unmeasured, right before the ingest window: the rate asked for is a sustained one, not the first seconds' (heap growth, first database pages)")
	flag.IntVar(&o.eventAgents, "event-agents", 16, "agents that upload events back to back during the ingest window")
	flag.IntVar(&o.batch, "batch", 1000, "events per upload")
	flag.BoolVar(&o.fetchPolicy, "fetch-policy", true, "GET the effective policy when the heartbeat announces a new version")
	flag.IntVar(&o.pid, "pid", 0, "manager PID to sample CPU and RSS from /proc")
	flag.DurationVar(&o.reqTimeout, "timeout", 30*time.Second, "per-request timeout")
	flag.DurationVar(&o.idleConnTime, "idle-conn-timeout", 0, "keep-alive idle timeout per agent (default: three intervals)")
	flag.BoolVar(&o.longPoll, "long-poll", false, "heartbeat as the real agent does: ?wait=interval±jitter, re-polled as soon as answered (latency = answer time beyond the wait)")
	flag.DurationVar(&o.maxWait, "max-wait", 60*time.Second, "the manager's cap on a long poll, to tell a timely answer from a late one")
	flag.IntVar(&o.dbPID, "db-pid", 0, "database server PID (PostgreSQL's postmaster) to sample its and its backends' CPU from /proc")
	flag.BoolVar(&o.gzip, "gzip", false, "send event uploads gzip'd (Content-Encoding: gzip), as the agent does above 4 KiB")
	flag.Parse()
	if o.warmup == 0 {
		o.warmup = 2 * o.interval
	}
	if o.quiet == 0 {
		o.quiet = 2 * o.interval
	}
	if o.idleConnTime == 0 {
		o.idleConnTime = 3 * o.interval
	}
	if o.eventAgents > o.agents {
		o.eventAgents = o.agents
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("loadgen: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

// raiseNoFile lifts the soft descriptor limit to the hard one: every agent
// keeps its own TLS connection open, so 10,000 agents need over 10,000
// descriptors.
func raiseNoFile(need int) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return
	}
	r.Cur = r.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
	log.Printf("RLIMIT_NOFILE %d (need about %d)", r.Cur, need)
	if int(r.Cur) < need {
		log.Printf("warning: descriptor limit below what %d agents need; raise it with ulimit -Hn as root", need)
	}
}

func run(ctx context.Context, o options) error {
	raiseNoFile(o.agents + 256)
	caPEM, err := os.ReadFile(o.caFile)
	if err != nil {
		return fmt.Errorf("reading CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("reading CA %s: no PEM certificate", o.caFile)
	}
	o.url = strings.TrimRight(o.url, "/")
	st := newStats()
	proc := newProcSampler(o.pid)
	self := newProcSampler(os.Getpid())
	db := newTreeSampler(o.dbPID)
	if o.token == "" {
		if o.apiKey == "" {
			return fmt.Errorf("need -token or -apikey")
		}
		if o.token, err = createToken(ctx, o, pool); err != nil {
			return err
		}
	}

	// Phase 1: enrolment.
	proc.mark("enroll")
	self.mark("enroll")
	db.mark("enroll")
	t0 := time.Now()
	agents, err := enrollAll(ctx, o, pool, st)
	if err != nil {
		return err
	}
	enrollDur := time.Since(t0)
	log.Printf("enrolled %d/%d agents in %s (%.0f/s)", len(agents), o.agents, enrollDur.Round(time.Millisecond), float64(len(agents))/enrollDur.Seconds())
	if len(agents) == 0 {
		return fmt.Errorf("no agent enrolled: %v", st.firstErrors())
	}

	// Phase 2: heartbeats, first warm-up (every agent connects and fetches
	// its policy once), then a quiet window, then the ingest window.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.heartbeatLoop(runCtx, o, st) }()
	}
	st.setPhase(phaseWarmup)
	proc.mark("warmup")
	self.mark("warmup")
	db.mark("warmup")
	log.Printf("warm-up %s (heartbeat %s ±%.0f%%)", o.warmup, o.interval, o.jitter*100)
	if !sleep(ctx, o.warmup) {
		return ctx.Err()
	}
	st.setPhase(phaseQuiet)
	proc.mark("quiet")
	self.mark("quiet")
	db.mark("quiet")
	log.Printf("measuring heartbeats for %s", o.quiet)
	if !sleep(ctx, o.quiet) {
		return ctx.Err()
	}
	var ingested int64
	var ingestDur time.Duration
	if o.ingest > 0 && o.eventAgents > 0 && o.ingestWarmup > 0 {
		// Heartbeats here count for "agents sustained" (between the two
		// measured windows) and get their own latency line.
		st.setPhase(phaseIngestWarmup)
		proc.mark("ingestwarmup")
		self.mark("ingestwarmup")
		db.mark("ingestwarmup")
		log.Printf("ingest warm-up (not measured): %d agents × %d-event batches for %s", o.eventAgents, o.batch, o.ingestWarmup)
		n, d := ingestAll(ctx, o, agents[:o.eventAgents], st, o.ingestWarmup, phaseIngestWarmup)
		log.Printf("ingest warm-up: %.0f events/s", float64(n)/d.Seconds())
	}
	if o.ingest > 0 && o.eventAgents > 0 {
		st.setPhase(phaseIngest)
		proc.mark("ingest")
		self.mark("ingest")
		db.mark("ingest")
		log.Printf("ingesting with %d agents × %d-event batches for %s", o.eventAgents, o.batch, o.ingest)
		ingested, ingestDur = ingestAll(ctx, o, agents[:o.eventAgents], st, o.ingest, phaseIngest)
	}
	st.setPhase(phaseDone)
	proc.mark("end")
	self.mark("end")
	db.mark("end")
	cancel()
	wg.Wait()

	report(o, st, proc, self, db, agents, enrollDur, ingested, ingestDur)
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// jittered returns d ± jitter·d, uniformly.
func jittered(d time.Duration, jitter float64) time.Duration {
	if jitter <= 0 {
		return d
	}
	f := 1 + jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// agentTransport is one agent's connection: its own client certificate,
// one kept-alive HTTP/1.1 connection (an idle HTTP/2 connection costs the
// manager more memory than an idle HTTP/1.1 one) and a one-entry TLS session
// cache so that a connection the manager closed comes back with a cheap
// resumption instead of a full handshake.
func agentTransport(o options, pool *x509.CertPool, cert *tls.Certificate) *http.Transport {
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Transport{
		TLSClientConfig:     tc,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     2,
		IdleConnTimeout:     o.idleConnTime,
		DisableCompression:  true,
		TLSHandshakeTimeout: o.reqTimeout,
	}
}

type phase int32

const (
	phaseEnroll phase = iota
	phaseWarmup
	phaseQuiet
	phaseIngestWarmup
	phaseIngest
	phaseDone
)

var phaseNames = [...]string{"enroll", "warmup", "quiet", "ingestwarmup", "ingest", "done"}

// stats collects latencies per phase and errors per operation.
type stats struct {
	phase atomic.Int32
	mu    sync.Mutex
	lat   map[string][]time.Duration // "op/phase" → samples
	errs  map[string]int64
	first []string
}

func newStats() *stats { return &stats{lat: map[string][]time.Duration{}, errs: map[string]int64{}} }

func (s *stats) setPhase(p phase) { s.phase.Store(int32(p)) }
func (s *stats) current() phase   { return phase(s.phase.Load()) }

func (s *stats) observe(op string, p phase, d time.Duration) {
	k := op + "/" + phaseNames[p]
	s.mu.Lock()
	s.lat[k] = append(s.lat[k], d)
	s.mu.Unlock()
}

func (s *stats) fail(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[op]++
	if len(s.first) < 8 {
		s.first = append(s.first, op+": "+err.Error())
	}
}

func (s *stats) firstErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.first...)
}

func (s *stats) samples(op string, p phase) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := append([]time.Duration(nil), s.lat[op+"/"+phaseNames[p]]...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
