package main

import (
	"fmt"
	"sort"
	"time"
)

// report prints human lines, then "result key=value" lines that run.sh
// reads.
func report(o options, st *stats, proc, self, db *procSampler, agents []*agent, enrollDur time.Duration, ingested int64, ingestDur time.Duration) {
	sustained := 0
	for _, a := range agents {
		if a.hbOK.Load() > 0 && a.hbFail.Load() == 0 {
			sustained++
		}
	}
	en := st.samples("enroll", phaseEnroll)
	mode := "interval"
	if o.longPoll {
		mode = "long-poll; latency = answer time beyond the poll deadline"
	}
	fmt.Printf("\n== mamori manager load: %d agents, heartbeat %s ±%.0f%% (%s), %d event agents × %d-event batches\n", o.agents, o.interval, o.jitter*100, mode, o.eventAgents, o.batch)
	fmt.Printf("enrolment: %d ok in %s (%.0f/s), p50 %s p99 %s\n", len(en), enrollDur.Round(time.Millisecond), float64(len(en))/enrollDur.Seconds(), ms(pct(en, .5)), ms(pct(en, .99)))
	for _, p := range []phase{phaseWarmup, phaseQuiet, phaseIngestWarmup, phaseIngest} {
		hb := st.samples("heartbeat", p)
		pol := st.samples("policy", p)
		if len(hb) == 0 {
			continue
		}
		fmt.Printf("heartbeat[%s]: n=%d p50 %s p90 %s p99 %s max %s; policy fetches %d p99 %s",
			phaseNames[p], len(hb), ms(pct(hb, .5)), ms(pct(hb, .9)), ms(pct(hb, .99)), ms(pct(hb, 1)), len(pol), ms(pct(pol, .99)))
		if early := st.samples("heartbeat-early", p); len(early) > 0 {
			fmt.Printf("; %d long polls answered early (news)", len(early))
		}
		fmt.Println()
	}
	var evps float64
	if ingestDur > 0 {
		evps = float64(ingested) / ingestDur.Seconds()
		in := st.samples("ingest", phaseIngest)
		fmt.Printf("ingest: %d events accepted in %s = %.0f events/s; batch p50 %s p99 %s\n", ingested, ingestDur.Round(time.Millisecond), evps, ms(pct(in, .5)), ms(pct(in, .99)))
	}
	fmt.Printf("agents sustained: %d/%d (every heartbeat in the measured windows answered 2xx)\n", sustained, o.agents)
	st.mu.Lock()
	ops := make([]string, 0, len(st.errs))
	var totalErr int64
	for k, v := range st.errs {
		ops = append(ops, fmt.Sprintf("%s=%d", k, v))
		totalErr += v
	}
	st.mu.Unlock()
	sort.Strings(ops)
	fmt.Printf("errors: %d %v\n", totalErr, ops)
	for _, e := range st.firstErrors() {
		fmt.Printf("  first errors: %s\n", e)
	}
	for _, u := range proc.usage() {
		fmt.Printf("manager[%s]: %s, CPU %.0f%% of one core, RSS max %.0f MB mean %.0f MB\n", u.name, u.dur.Round(time.Second), u.cpuPercent, u.rssMaxMB, u.rssMeanMB)
		fmt.Printf("result manager_cpu_%s_percent=%.1f manager_rss_%s_max_mb=%.0f\n", u.name, u.cpuPercent, u.name, u.rssMaxMB)
	}
	// CPU cost per unit of work is what a starved, shared machine still
	// measures fairly: it projects what one idle core would sustain.
	for _, u := range proc.usage() {
		cpuSec := u.cpuPercent / 100 * u.dur.Seconds()
		switch u.name {
		case "quiet":
			if n := len(st.samples("heartbeat", phaseQuiet)); n > 0 && cpuSec > 0 {
				per := cpuSec / float64(n)
				fmt.Printf("manager CPU per answered heartbeat: %.2f ms (quiet window; inflated when requests time out) → one core sustains about %.0f heartbeats/s, %.0f agents at %s\n",
					per*1000, 1/per, o.interval.Seconds()/per, o.interval)
				fmt.Printf("result manager_cpu_ms_per_heartbeat=%.3f\n", per*1000)
			}
		case "ingest":
			if ingested > 0 && cpuSec > 0 {
				per := cpuSec / float64(ingested)
				fmt.Printf("manager CPU per 1000 events ingested: %.1f ms → one core sustains about %.0f events/s\n", per*1e6, 1/per)
				fmt.Printf("result manager_cpu_ms_per_1000_events=%.2f\n", per*1e6)
			}
		}
	}
	for _, u := range self.usage() {
		fmt.Printf("loadgen[%s]: CPU %.0f%% of one core, RSS max %.0f MB\n", u.name, u.cpuPercent, u.rssMaxMB)
		perK("loadgen", u, ingested)
	}
	for _, u := range db.usage() {
		fmt.Printf("database[%s]: CPU %.0f%% of one core (server and backends)\n", u.name, u.cpuPercent)
		perK("db", u, ingested)
	}
	quiet := st.samples("heartbeat", phaseQuiet)
	under := st.samples("heartbeat", phaseIngest)
	fmt.Printf("result agents=%d agents_sustained=%d enrolled=%d\n", o.agents, sustained, len(agents))
	fmt.Printf("result heartbeat_p50_ms=%.2f heartbeat_p99_ms=%.2f heartbeat_n=%d\n", msf(pct(quiet, .5)), msf(pct(quiet, .99)), len(quiet))
	fmt.Printf("result heartbeat_ingest_p50_ms=%.2f heartbeat_ingest_p99_ms=%.2f heartbeat_ingest_n=%d\n", msf(pct(under, .5)), msf(pct(under, .99)), len(under))
	fmt.Printf("result events_per_s=%.0f events_accepted=%d errors=%d\n", evps, ingested, totalErr)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// perK prints a process's CPU per 1000 events ingested in the ingest
// window: with the manager's, it tells where the two cores go.
func perK(who string, u phaseUsage, ingested int64) {
	if u.name != "ingest" || ingested == 0 {
		return
	}
	per := u.cpuPercent / 100 * u.dur.Seconds() / float64(ingested)
	fmt.Printf("%s CPU per 1000 events ingested: %.1f ms\n", who, per*1e6)
	fmt.Printf("result %s_cpu_ms_per_1000_events=%.2f\n", who, per*1e6)
}
