// Package budget keeps the agent's heavy work (malware and integrity scans)
// within the policy's resource budget, so a scan never hurts the workload it
// protects: a CPU cap enforced by self-throttling, and the idle I/O
// scheduling class for the threads that scan.
//
// Self-throttling measures the process's own CPU time (getrusage) and makes
// the scanning goroutine sleep until usage falls back under the cap. It needs
// no privileges and works in any container; a cgroup v2 cpu.max would be
// stricter but needs a delegated cgroup, which most hosts do not give the
// agent. The cap therefore applies to the whole agent process: when other
// modules are busy, scans slow down further, which is the safe direction.
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
	mu          sync.Mutex
	cpuPercent  int
	idleIO      bool
	start       time.Time
	cpuAtStart  time.Duration
	sleptTotal  time.Duration
	now         func() time.Time
	processTime func() time.Duration
}

// New returns a throttler for cpuPercent (of one core; 0 = no cap) and
// idle I/O.
func New(cpuPercent int, idleIO bool) *Throttler {
	t := &Throttler{now: time.Now, processTime: ProcessCPU}
	t.Set(cpuPercent, idleIO)
	return t
}

// Set changes the budget.
func (t *Throttler) Set(cpuPercent int, idleIO bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cpuPercent = max(0, cpuPercent)
	t.idleIO = idleIO
	t.start, t.cpuAtStart = t.now(), t.processTime()
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
	var sleep time.Duration
	if pct > 0 {
		now, cpu := t.now(), t.processTime()
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
