package watch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/integrity"
	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
	"github.com/mamori-sec/mamori/integrity/walk"
)

// Mode names the kernel interface in use.
const (
	ModeFanotify = "fanotify"
	ModeInotify  = "inotify"
)

// ErrUnavailable: no kernel interface could be set up.
var ErrUnavailable = errors.New("real-time watching unavailable")

// Config is a real-time watch of a policy against a baseline.
type Config struct {
	Policy   *policy.Policy
	Baseline *baseline.Baseline // read only
	Root     string             // as in walk.Options
	// Mode forces ModeFanotify or ModeInotify; "" picks fanotify when it
	// can be set up (root), inotify otherwise.
	Mode string
	// Quiet is how long a path must stay quiet before it is verified
	// (coalescing a burst of writes into one check); default 20ms.
	Quiet time.Duration
	// MaxDelay bounds how long a continuously written path waits; default 1s.
	MaxDelay time.Duration
	Host     string
	// ProcRoot is /proc, injectable for tests.
	ProcRoot string
}

// Change is one verified real-time finding with the actors behind it.
type Change struct {
	integrity.Finding
	Actors   []Actor   // empty when the kernel does not say (inotify)
	Seen     time.Time // first kernel event for the path
	Reported time.Time
}

// Event renders the change in mamori's event model, with who did it.
func (c *Change) Event(host string) event.Event {
	ev := c.Finding.Event(host)
	ev.Fields["detected_by"] = "realtime"
	ev.Fields["latency_ms"] = strconv.FormatFloat(float64(c.Reported.Sub(c.Seen).Microseconds())/1000, 'f', 1, 64)
	if len(c.Actors) == 0 {
		ev.Fields["actor"] = "unknown"
		return ev
	}
	a := c.Actors[len(c.Actors)-1]
	ev.Process = &event.Process{PID: a.PID, Exe: a.Exe, Cmdline: a.Cmdline, User: a.User}
	if a.Exe == "" {
		ev.Process.Exe = "unknown"
	}
	if a.Unknown != "" {
		ev.Fields["actor_unknown"] = a.Unknown
	}
	if a.UID >= 0 {
		u := a.UID
		ev.Process.UID = &u
	}
	if len(c.Actors) > 1 {
		var pids string
		for i, x := range c.Actors {
			if i > 0 {
				pids += " "
			}
			pids += strconv.Itoa(x.PID)
		}
		ev.Fields["pids"] = pids
	}
	return ev
}

// source is a kernel interface: it delivers raw path events until ctx ends.
type source interface {
	run(ctx context.Context, out chan<- rawEvent) error
	close()
	health() string
}

type rawEvent struct {
	path  string // logical path
	actor *Actor
	t     time.Time
	// final: the event ends a change (close after writing, chmod, unlink,
	// rename), so the path is verified at once instead of after Quiet.
	final bool
}

// Watcher runs one real-time watch.
type Watcher struct {
	cfg  Config
	src  source
	mode string

	mu     sync.Mutex
	health string
}

// New sets the watch up (marks or watches are placed here, so Run misses
// nothing that happens after New returns).
func New(cfg Config) (*Watcher, error) {
	if cfg.Quiet == 0 {
		cfg.Quiet = 20 * time.Millisecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = time.Second
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Root == "/" {
		cfg.Root = ""
	}
	w := &Watcher{cfg: cfg}
	var ferr error
	if cfg.Mode == "" || cfg.Mode == ModeFanotify {
		src, err := newFanotify(cfg)
		if err == nil {
			w.src, w.mode = src, ModeFanotify
			return w, nil
		}
		ferr = err
		if cfg.Mode == ModeFanotify {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	src, err := newInotify(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: fanotify: %v; inotify: %v", ErrUnavailable, ferr, err)
	}
	w.src, w.mode = src, ModeInotify
	return w, nil
}

// Mode says which kernel interface the watch uses.
func (w *Watcher) Mode() string { return w.mode }

// Health is a condition an operator must act on (inotify watch limit
// reached), or "".
func (w *Watcher) Health() string { return w.src.health() }

type pending struct {
	first, last time.Time
	actors      []Actor
	final       bool
	inflight    bool
	started     time.Time
}

type verified struct {
	path    string
	ch      *Change
	retry   bool
	started time.Time
}

// Run delivers verified changes to emit until ctx is done. Paths are
// verified in parallel, one worker per core, so a burst of changes does
// not queue behind one hashing goroutine.
func (w *Watcher) Run(ctx context.Context, emit func(Change)) error {
	ctx, cancel := context.WithCancel(ctx)
	raw := make(chan rawEvent, 1<<14)
	errc := make(chan error, 1)
	srcDone := make(chan struct{})
	go func() { errc <- w.src.run(ctx, raw); close(srcDone) }()
	// The descriptor is closed only once its reader is gone.
	defer func() { cancel(); <-srcDone; w.src.close() }()
	todo := make(chan string, 1<<14)
	done := make(chan verified, 1<<14)
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case path := <-todo:
					t := time.Now()
					ch, retry := w.verify(ctx, path)
					done <- verified{path: path, ch: ch, retry: retry, started: t}
				}
			}
		}()
	}
	pend := map[string]*pending{}
	reported := map[string]string{} // path → state last reported, to say it once
	// The ticker runs only while paths are pending: a 5 ms tick on an idle
	// host was the agent's largest idle CPU cost.
	tick := time.NewTicker(w.cfg.Quiet / 4)
	tick.Stop()
	defer tick.Stop()
	ticking := false
	for {
		var tickC <-chan time.Time
		switch {
		case len(pend) > 0 && !ticking:
			tick.Reset(w.cfg.Quiet / 4)
			ticking = true
		case len(pend) == 0 && ticking:
			tick.Stop()
			ticking = false
		}
		if ticking {
			tickC = tick.C
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case ev := <-raw:
			p := pend[ev.path]
			if p == nil {
				p = &pending{first: ev.t}
				pend[ev.path] = p
			}
			p.last = ev.t
			p.final = ev.final
			if ev.final && !p.inflight {
				select {
				case todo <- ev.path:
					p.inflight = true
				default:
				}
			}
			if ev.actor != nil && (len(p.actors) == 0 || p.actors[len(p.actors)-1].PID != ev.actor.PID) {
				if len(p.actors) < 8 {
					p.actors = append(p.actors, *ev.actor)
				}
			}
		case v := <-done:
			p := pend[v.path]
			if p == nil {
				continue
			}
			p.inflight = false
			if v.retry && time.Since(p.first) < w.cfg.MaxDelay || p.last.After(v.started) {
				continue // still moving: verify again when quiet
			}
			delete(pend, v.path)
			if v.ch == nil {
				delete(reported, v.path)
				continue
			}
			state := stateKey(v.ch)
			if reported[v.path] == state {
				continue
			}
			reported[v.path] = state
			v.ch.Actors, v.ch.Seen, v.ch.Reported = p.actors, p.first, time.Now()
			emit(*v.ch)
		case now := <-tickC:
			for path, p := range pend {
				if p.inflight || !p.final && now.Sub(p.last) < w.cfg.Quiet && now.Sub(p.first) < w.cfg.MaxDelay {
					continue
				}
				p.inflight = true
				select {
				case todo <- path:
				default:
					p.inflight = false
				}
			}
		}
	}
}

func stateKey(c *Change) string {
	s := c.What
	for _, x := range c.Changes {
		s += "\x00" + x.Attr + "=" + x.New
	}
	return s
}

// verify compares the path's current state with the baseline. retry
// means the file was changing while it was read: look again later.
func (w *Watcher) verify(ctx context.Context, path string) (*Change, bool) {
	b := w.cfg.Baseline
	i, inBase := b.Find(path)
	it := walk.One(ctx, w.cfg.Policy, walk.Options{Root: w.cfg.Root, Retries: 1}, path)
	switch {
	case it == nil && !inBase:
		return nil, false
	case it == nil:
		r := w.cfg.Policy.RuleFor(path)
		if r == nil || r.ExpectGone {
			return nil, false
		}
		return &Change{Finding: integrity.Finding{What: integrity.Removed, Path: path, Rule: r, Old: &b.Entries[i]}}, false
	case it.Err != nil && errors.Is(it.Err, walk.ErrUnstable):
		return nil, true
	case it.Entry.Attrs == 0:
		return &Change{Finding: integrity.Finding{What: integrity.Error, Path: path, Rule: it.Rule, Err: it.Err.Error()}}, false
	case !inBase:
		if it.Rule.ExpectNew {
			return nil, false
		}
		e := it.Entry
		return &Change{Finding: integrity.Finding{What: integrity.Added, Path: path, Rule: it.Rule, New: &e}}, false
	}
	old := &b.Entries[i]
	diff := integrity.Diff(old, &it.Entry, it.Rule)
	if onlyTimes(diff) && old.Attrs.Any(policy.AttrHashes) && it.Entry.Attrs.Any(policy.AttrHashes) {
		// The content hash matched: a write that restored the recorded
		// content, only its times moved. Not an alert.
		return nil, false
	}
	if len(diff) == 0 {
		return nil, false
	}
	e := it.Entry
	return &Change{Finding: integrity.Finding{What: integrity.Changed, Path: path, Rule: it.Rule, Old: old, New: &e, Changes: diff}}, false
}

func onlyTimes(d []event.Change) bool {
	for _, c := range d {
		if c.Attr != "mtime" && c.Attr != "ctime" {
			return false
		}
	}
	return len(d) > 0
}
