// Package budget keeps the agent's heavy work (malware and integrity scans)
// within the policy's resource budget, so a scan never hurts the workload it
// protects: a CPU cap enforced by self-throttling, and the idle I/O
// scheduling class for the threads that scan.
//
// Self-throttling measures the CPU time of the threads that call Throttle —
// each scanning goroutine is pinned to its own thread on its first call, and
// getrusage(RUSAGE_THREAD) reads that thread — and makes them sleep until
// their usage falls back under the cap. Other modules' work (the firewall,
// log inspection) does not count against the scans' budget. It needs no
// privileges and works in any container; a per-thread cgroup v2 cpu.max
// would need a delegated, threaded cgroup, which most hosts do not give the
// agent. The kernel-enforced cap is service-wide instead: ServiceLimits
// turns the budget into the CPUQuota=, MemoryMax= and IOWeight= of the
// systemd unit `mamori agent install` writes.
package budget

import (
	"context"
	"sync"
	"syscall"
	"time"
)

// window is how much history the cap looks at: long enough to smooth
// scheduler noise, short enough that a burst cannot run for seconds.
const window = 2 * time.Second

// Throttler enforces one budget. Safe for concurrent use; Set changes the
// budget on a policy update.
type Throttler struct {
	mu         sync.Mutex
	cpuPercent int
	idleIO     bool
	start      time.Time
	cpuAtStart time.Duration
	sleptTotal time.Duration
	now        func() time.Time
	// used is the CPU time the throttled threads spent, summed from each
	// thread's own counter; threads maps a thread id to its last reading.
	used    time.Duration
	threads map[int]time.Duration
	// processTime replaces per-thread accounting in tests.
	processTime func() time.Duration
}

// New returns a throttler for cpuPercent (of one core; 0 = no cap) and
// idle I/O.
func New(cpuPercent int, idleIO bool) *Throttler {
	t := &Throttler{now: time.Now, threads: map[int]time.Duration{}}
	t.Set(cpuPercent, idleIO)
	return t
}

// Set changes the budget.
func (t *Throttler) Set(cpuPercent int, idleIO bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cpuPercent = max(0, cpuPercent)
	t.idleIO = idleIO
	t.start, t.cpuAtStart = t.now(), t.cpuLocked()
}

// account adds the calling thread's CPU time since its last call. A thread
// seen for the first time (or a reused thread id whose counter went back) is
// pinned to its goroutine so that later readings are that goroutine's alone.
func (t *Throttler) account() {
	if t.processTime != nil {
		return
	}
	tid, cpu := threadCPU()
	t.mu.Lock()
	last, seen := t.threads[tid]
	if seen && cpu >= last {
		t.used += cpu - last
	}
	t.threads[tid] = cpu
	if len(t.threads) > 4096 { // ids of exited threads
		t.threads = map[int]time.Duration{tid: cpu}
	}
	t.mu.Unlock()
	if !seen || cpu < last {
		lockThread()
	}
}

// cpuLocked is the CPU time that counts against the cap.
func (t *Throttler) cpuLocked() time.Duration {
	if t.processTime != nil {
		return t.processTime()
	}
	return t.used
}

// Slept returns how long Throttle has made callers wait in total.
func (t *Throttler) Slept() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sleptTotal
}

// Throttle is called by scanning loops between units of work. It moves the
// calling goroutine's thread to the idle I/O class when the budget asks for
// it, and sleeps while the process is over its CPU cap. It returns ctx's
// error when ctx ends during a sleep.
func (t *Throttler) Throttle(ctx context.Context) error {
	t.mu.Lock()
	pct, idle := t.cpuPercent, t.idleIO
	t.mu.Unlock()
	if pct == 0 && !idle {
		return ctx.Err()
	}
	t.account()
	t.mu.Lock()
	var sleep time.Duration
	if pct > 0 {
		now, cpu := t.now(), t.cpuLocked()
		elapsed := now.Sub(t.start)
		if elapsed > window {
			// Slide: start a new window, keeping no debt.
			t.start, t.cpuAtStart = now, cpu
		} else {
			used := cpu - t.cpuAtStart
			// Wall time needed for used CPU to be pct of it.
			need := time.Duration(float64(used) * 100 / float64(pct))
			if need > elapsed {
				sleep = min(need-elapsed, window)
			}
		}
		t.sleptTotal += sleep
	}
	t.mu.Unlock()
	if idle {
		setIdleIO()
	}
	if sleep <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(sleep)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ProcessCPU returns the user+system CPU time of the whole process.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
