package agent

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// Restart back-off for a failing module: doubling from restartMin to
// restartMax, reset once a run lasted stableAfter.
var (
	restartMin  = time.Second
	restartMax  = 5 * time.Minute
	stableAfter = time.Minute
	stopTimeout = 30 * time.Second
)

// runner supervises one module: configure, run in a goroutine with panic
// recovery, restart with back-off, and track the state to report.
type runner struct {
	name string
	mod  Module
	emit func(event.Event)
	note func(name string, st ModuleStatus, err error) // state change hook

	mu         sync.Mutex
	state      State
	reason     string
	lastErr    string
	since      time.Time
	configured bool
	spec       ModuleSpec
	restarts   int
	cancel     context.CancelFunc
	done       chan struct{}
}

func newRunner(name string, m Module, emit func(event.Event)) *runner {
	return &runner{name: name, mod: m, emit: emit, state: StateStopped, since: time.Now()}
}

func (r *runner) setState(s State, reason string) {
	r.mu.Lock()
	changed := r.state != s || r.reason != reason
	r.state, r.reason = s, reason
	if changed {
		r.since = time.Now()
	}
	r.mu.Unlock()
	if changed && r.note != nil {
		r.note(r.name, r.status(), nil)
	}
}

// apply configures the module with spec and starts or stops it to match.
// On a Configure error the module keeps its previous configuration (and
// keeps running if it was); the error is returned for the policy report.
func (r *runner) apply(ctx context.Context, spec ModuleSpec) error {
	if !spec.Enabled {
		r.stop()
		r.mu.Lock()
		r.spec = spec
		r.mu.Unlock()
		r.setState(StateDisabled, "")
		return nil
	}
	err := r.configure(ctx, spec)
	if err != nil {
		r.mu.Lock()
		r.lastErr = err.Error()
		wasConfigured := r.configured
		r.mu.Unlock()
		if errors.Is(err, ErrUnavailable) {
			r.stop()
			r.setState(StateUnavailable, reasonOf(err))
			return nil
		}
		if !wasConfigured {
			r.setState(StateFailed, "configuring: "+err.Error())
		}
		return fmt.Errorf("configuring module %s: %w", r.name, err)
	}
	r.mu.Lock()
	r.configured, r.spec = true, spec
	running := r.cancel != nil
	r.mu.Unlock()
	if !running {
		r.start(ctx)
	}
	return nil
}

func (r *runner) configure(ctx context.Context, spec ModuleSpec) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in Configure: %v", p)
		}
	}()
	return r.mod.Configure(ctx, spec)
}

// start runs the module until stop, restarting it when it fails.
func (r *runner) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	r.mu.Lock()
	r.cancel, r.done = cancel, done
	r.mu.Unlock()
	r.setState(StateRunning, "")
	go func() {
		defer close(done)
		delay := restartMin
		for first := true; ; first = false {
			if !first {
				r.setState(StateRunning, "")
			}
			began := time.Now()
			err := r.runOnce(ctx)
			if ctx.Err() != nil {
				r.setState(StateStopped, "")
				return
			}
			if errors.Is(err, ErrUnavailable) {
				// Not a failure: the host cannot do it. Wait for the next
				// policy change instead of retrying in a loop.
				r.mu.Lock()
				r.lastErr = err.Error()
				r.cancel = nil
				r.mu.Unlock()
				r.setState(StateUnavailable, reasonOf(err))
				cancel()
				return
			}
			if err == nil {
				err = errors.New("Run returned before the agent stopped it")
			}
			if time.Since(began) > stableAfter {
				delay = restartMin
			}
			r.mu.Lock()
			r.lastErr = err.Error()
			r.restarts++
			r.mu.Unlock()
			r.setState(StateFailed, err.Error())
			if r.note != nil {
				r.note(r.name, r.status(), err)
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				r.setState(StateStopped, "")
				return
			case <-t.C:
			}
			delay = min(delay*2, restartMax)
		}
	}()
}

func (r *runner) runOnce(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, firstLines(debug.Stack(), 12))
		}
	}()
	return r.mod.Run(ctx, r.emit)
}

// stop cancels the module's run and waits for it to return.
func (r *runner) stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel = nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		// A module that ignores its context must not hang policy changes
		// or shutdown: give up waiting and say so.
		t := time.NewTimer(stopTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			r.mu.Lock()
			r.lastErr = fmt.Sprintf("Run did not return %v after cancel", stopTimeout)
			r.mu.Unlock()
			r.setState(StateFailed, "not responding to stop")
		}
	}
}

// status merges what the supervisor knows with what the module reports.
func (r *runner) status() ModuleStatus {
	r.mu.Lock()
	st := ModuleStatus{Name: r.name, State: r.state, Reason: r.reason, LastError: r.lastErr, Since: r.since}
	restarts := r.restarts
	r.mu.Unlock()
	ms := safeStatus(r.mod)
	st.Mode, st.RuleCount = ms.Mode, ms.RuleCount
	st.Counters = map[string]int64{}
	for k, v := range ms.Counters {
		st.Counters[k] = v
	}
	if restarts > 0 {
		st.Counters["restarts"] = int64(restarts)
	}
	// While running, the module knows best (it may run degraded or have
	// found itself unavailable).
	if st.State == StateRunning && ms.State != "" && ms.State != StateStarting {
		st.State = ms.State
		if ms.Reason != "" {
			st.Reason = ms.Reason
		}
		if ms.LastError != "" {
			st.LastError = ms.LastError
		}
	}
	return st
}

func safeStatus(m Module) (st ModuleStatus) {
	defer func() {
		if p := recover(); p != nil {
			st = ModuleStatus{State: StateFailed, LastError: fmt.Sprintf("panic in Status: %v", p)}
		}
	}()
	return m.Status()
}

func reasonOf(err error) string {
	s := err.Error()
	if p := ErrUnavailable.Error() + ": "; len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func firstLines(b []byte, n int) string {
	for i, c := range b {
		if c == '\n' {
			n--
			if n == 0 {
				return string(b[:i])
			}
		}
	}
	return string(b)
}
