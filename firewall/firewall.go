package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/firewall/nft"
	"github.com/mamori-sec/mamori/firewall/policy"
	"github.com/mamori-sec/mamori/firewall/recon"
	"github.com/mamori-sec/mamori/response"
)

// ErrUnavailable marks hosts where the firewall cannot run (no privilege,
// no nf_tables); the error wrapping it says which.
var ErrUnavailable = nft.ErrUnavailable

// Options configures a Firewall.
type Options struct {
	// NetNS is an open network-namespace file to work in; -1 means the
	// current one (tests use throwaway namespaces).
	NetNS int
	// Hostname goes into events.
	Hostname string
	// Management are the manager's endpoints, kept open unless a policy
	// overrides (policy.Options.Management).
	Management []netip.AddrPort
	// Poll is how often Run checks drift, scans and counters. Default 2s.
	Poll time.Duration
	// DropEvery is how often drop counters become events. Default 60s.
	DropEvery time.Duration
	Logger    *slog.Logger
}

// Firewall owns mamori's nftables table in one network namespace.
type Firewall struct {
	opt Options

	mu       sync.Mutex
	k        *nft.Conn
	compiled *policy.Compiled
	plan     *nft.Plan
	verdicts map[string]string // rule tag → verdict, for drop counting
	det      *recon.Detector
	drops    map[string]uint64 // comment → packets at the last drop report
	lastDrop time.Time

	blockq chan response.Block // Block requests, applied by blockWorker
	blocks []event.Event       // carried-out and failed requests, for the next Poll
	// blockFailures counts block requests that did not happen.
	blockFailures uint64
	done          chan struct{}
	closed        sync.Once
}

var _ response.Blocker = (*Firewall)(nil)

// Open connects to nftables. The error wraps ErrUnavailable when the host
// cannot run a firewall.
func Open(opt Options) (*Firewall, error) {
	if opt.Poll <= 0 {
		opt.Poll = 2 * time.Second
	}
	if opt.DropEvery <= 0 {
		opt.DropEvery = time.Minute
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	k, err := nft.Open(opt.NetNS)
	if err != nil {
		return nil, err
	}
	f := &Firewall{opt: opt, k: k, drops: map[string]uint64{}, blockq: make(chan response.Block, 4096), done: make(chan struct{})}
	go f.blockWorker()
	return f, nil
}

// Close stops the block worker and releases the netlink socket; the
// kernel ruleset stays.
func (f *Firewall) Close() error {
	f.closed.Do(func() { close(f.done) })
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k.Close()
}

// blockWorker applies queued Block requests, batching whatever queued up
// meanwhile into one commit (a brute-force storm costs one netlink batch,
// not one per request).
func (f *Firewall) blockWorker() {
	for {
		var reqs []response.Block
		select {
		case <-f.done:
			return
		case b := <-f.blockq:
			reqs = append(reqs, b)
		}
	drain:
		for len(reqs) < 1024 {
			select {
			case b := <-f.blockq:
				reqs = append(reqs, b)
			default:
				break drain
			}
		}
		batch := make([]nft.BlockEntry, len(reqs))
		for i, b := range reqs {
			batch[i] = nft.BlockEntry{Prefix: b.Addr.Masked(), TTL: b.TTL}
		}
		if err := f.BlockMany(batch); err != nil {
			f.opt.Logger.Warn("carrying out block requests", "count", len(batch), "err", err)
			f.blockFailed(reqs, err)
			continue
		}
		f.mu.Lock()
		for _, b := range reqs {
			if len(f.blocks) >= maxBlockEvents {
				break // a storm: the block sets hold them all, events stay bounded
			}
			ev := f.event(event.KindFirewallBlock, event.SeverityMedium, fmt.Sprintf("blocked %s for %s: %s", b.Addr, ttlText(b.TTL), b.Reason))
			ev.Action = "blocked"
			ev.Src = &event.Endpoint{IP: b.Addr.Addr().String()}
			ev.Fields = map[string]string{"prefix": b.Addr.String(), "ttl": ttlText(b.TTL), "requested_by": b.Module, "reason": b.Reason}
			f.blocks = append(f.blocks, ev)
		}
		f.mu.Unlock()
	}
}

// maxBlockEvents bounds the block events (carried out or failed) kept
// between two polls.
const maxBlockEvents = 1000

// blockFailed reports block requests the kernel did not carry out: an
// active response that silently did not happen leaves the attacker in, so
// each one is an event (high severity), and all are counted.
func (f *Firewall) blockFailed(reqs []response.Block, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blockFailures += uint64(len(reqs))
	for _, b := range reqs {
		if len(f.blocks) >= maxBlockEvents {
			return
		}
		f.blocks = append(f.blocks, f.blockFailedEvent(b, err))
	}
}

func (f *Firewall) blockFailedEvent(b response.Block, err error) event.Event {
	ev := f.event(event.KindFirewallBlock, event.SeverityHigh, fmt.Sprintf("blocking %s failed: %v (requested for: %s)", b.Addr, err, b.Reason))
	ev.Action = ActionBlockFailed
	ev.Src = &event.Endpoint{IP: b.Addr.Addr().String()}
	ev.Fields = map[string]string{"prefix": b.Addr.String(), "ttl": ttlText(b.TTL), "requested_by": b.Module, "reason": b.Reason, "error": err.Error()}
	return ev
}

// ActionBlockFailed is the Action of a firewall.block event whose block
// did not happen.
const ActionBlockFailed = "block failed"

// BlockFailures counts the block requests that failed since Open (queue
// full or refused by the kernel), for the module's metrics.
func (f *Firewall) BlockFailures() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blockFailures
}

// Compile validates p with this host's options.
func (f *Firewall) Compile(p *policy.Policy) (*policy.Compiled, []policy.Warning, error) {
	return policy.Compile(p, policy.Options{Management: f.opt.Management})
}

// Apply compiles and applies p. Nothing changes when p does not compile or
// the kernel refuses the batch; changed is false when the kernel already
// held exactly this policy.
func (f *Firewall) Apply(ctx context.Context, p *policy.Policy) (changed bool, warns []policy.Warning, err error) {
	c, warns, err := f.Compile(p)
	if err != nil {
		return false, nil, fmt.Errorf("validating policy: %w", err)
	}
	changed, err = f.ApplyCompiled(ctx, c)
	return changed, warns, err
}

// ApplyCompiled applies an already compiled policy.
func (f *Firewall) ApplyCompiled(_ context.Context, c *policy.Compiled) (bool, error) {
	plan := nft.Build(c)
	f.mu.Lock()
	defer f.mu.Unlock()
	changed, err := f.k.Apply(plan)
	if err != nil {
		return false, fmt.Errorf("applying policy: %w", err)
	}
	f.compiled, f.plan = c, plan
	if changed {
		f.drops = map[string]uint64{} // new rules count from zero
	}
	f.verdicts = map[string]string{}
	for _, ch := range plan.Chains {
		for _, r := range ch.Rules {
			f.verdicts[r.Tag] = r.Verdict
		}
	}
	if c.Recon != nil {
		f.det = &recon.Detector{Threshold: c.Recon.Ports, Hosts: c.Recon.Hosts, Cooldown: c.Recon.Window}
	} else {
		f.det = nil
	}
	return changed, nil
}

// Mark returns the plan fingerprint and ruleset generation after this
// Firewall's last commit, for a later process (SetMark).
func (f *Firewall) Mark() (fp string, gen uint32, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k.Mark()
}

// SetMark tells the Firewall what an earlier process committed.
func (f *Firewall) SetMark(fp string, gen uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.k.Known(fp, gen)
}

// Unchanged reports whether the kernel provably still holds the plan with
// fingerprint fp (nothing committed since the mark).
func (f *Firewall) Unchanged(fp string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k.Unchanged(fp)
}

// InForce reports whether the policy this Firewall applied is provably
// still in the kernel untouched (one generation round trip).
func (f *Firewall) InForce() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.plan != nil && f.k.Unchanged(f.plan.Fingerprint)
}

// PlanFingerprint returns the fingerprint of the plan this Firewall
// applied, or "".
func (f *Firewall) PlanFingerprint() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.plan == nil {
		return ""
	}
	return f.plan.Fingerprint
}

// Compiled returns the policy applied by this Firewall, or nil.
func (f *Firewall) Compiled() *policy.Compiled {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.compiled
}

// Remove deletes mamori's table, block sets included.
func (f *Firewall) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compiled, f.plan = nil, nil
	return f.k.Delete()
}

// RemovePolicy replaces the policy with the block-only table: accept
// everything except blocked addresses (what "no policy" means once
// something was blocked).
func (f *Firewall) RemovePolicy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compiled, f.plan = nil, nil
	_, err := f.k.Apply(nft.BlockOnly())
	return err
}

// State reads the kernel's mamori table.
func (f *Firewall) State() (*nft.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k.Read()
}

// Diff compares the kernel with the plan of c.
func (f *Firewall) Diff(c *policy.Compiled) ([]string, error) {
	st, err := f.State()
	if err != nil {
		return nil, err
	}
	return st.Diff(nft.Build(c)), nil
}

// Block queues an active-response request and returns at once, as the
// response.Blocker contract asks of callers on detection hot paths; the
// block worker commits it within milliseconds (errors are logged). A zero
// TTL blocks until unblocked. Use BlockMany to wait for the commit.
func (f *Firewall) Block(_ context.Context, b response.Block) error {
	if !b.Addr.IsValid() {
		return errors.New("blocking: invalid prefix")
	}
	select {
	case f.blockq <- b:
		return nil
	default:
		err := fmt.Errorf("blocking %s: request queue full", b.Addr)
		f.blockFailed([]response.Block{b}, errors.New("request queue full"))
		return err
	}
}

// BlockMany blocks many entries in one batch (a manager's global list).
func (f *Firewall) BlockMany(es []nft.BlockEntry) error {
	for _, e := range es {
		if !e.Prefix.IsValid() {
			return errors.New("blocking: invalid prefix")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.k.Block(es); err != nil {
		return fmt.Errorf("blocking: %w", err)
	}
	return nil
}

// Unblock removes an address or network from the block sets.
func (f *Firewall) Unblock(_ context.Context, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.k.Unblock([]netip.Prefix{p.Masked()}); err != nil {
		return fmt.Errorf("unblocking %s: %w", p, err)
	}
	return nil
}

// Blocked lists the block sets.
func (f *Firewall) Blocked() ([]nft.Blocked, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k.Blocked()
}

// Run keeps the policy applied and reports until ctx is done: drift
// (restored at once), port scans (optionally blocked) and drops
// (aggregated per rule every DropEvery).
func (f *Firewall) Run(ctx context.Context, emit func(event.Event)) error {
	t := time.NewTicker(f.opt.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			for _, ev := range f.Poll(ctx, now) {
				emit(ev)
			}
		}
	}
}

// Poll does one round of Run's checks and returns the events.
func (f *Firewall) Poll(ctx context.Context, now time.Time) []event.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.blocks
	f.blocks = nil
	if f.plan == nil {
		return out
	}
	// Dumping a big ruleset costs; the generation check proves in one
	// round trip that nothing changed since our last commit.
	checkDrift := !f.k.Unchanged(f.plan.Fingerprint)
	countDrops := now.Sub(f.lastDrop) >= f.opt.DropEvery
	var st *nft.State
	if checkDrift || countDrops {
		var err error
		if st, err = f.k.Read(); err != nil {
			f.opt.Logger.Warn("reading firewall state", "err", err)
			return nil
		}
	}
	var diff []string
	if checkDrift {
		diff = st.Diff(f.plan)
	}
	if len(diff) > 0 {
		by := "outside mamori"
		ev := f.event(event.KindFirewallDrift, event.SeverityHigh, "")
		ev.Fields = map[string]string{"changed_by": "unknown"}
		if cli := f.lastCLIApply(); cli != nil && cli.Fingerprint != "" && kernelFingerprint(st) == cli.Fingerprint {
			// `mamori firewall apply --force` replaced the agent's policy.
			by = fmt.Sprintf("by the CLI (`mamori firewall apply`, pid %d at %s)", cli.PID, cli.Since.Format(time.RFC3339))
			ev.Fields = map[string]string{"changed_by": "cli", "cli_pid": strconv.Itoa(cli.PID), "cli_policy": cli.Fingerprint}
		}
		ev.Message = "firewall ruleset was changed " + by + " and has been restored"
		ev.Action = "restored"
		for _, d := range diff {
			ev.Changes = append(ev.Changes, event.Change{Attr: "table inet " + nft.TableName, Old: d})
		}
		if _, err := f.k.Apply(f.plan); err != nil {
			ev.Action = "alerted"
			ev.Message = "firewall ruleset was changed " + by + "; restoring it failed: " + err.Error()
		}
		out = append(out, ev)
		st = nil
		f.drops = map[string]uint64{} // the restored rules count from zero
	}
	out = append(out, f.reconEvents(ctx, now)...)
	if st != nil && countDrops {
		out = append(out, f.dropEvents(st)...)
		f.lastDrop = now
	}
	return out
}

func (f *Firewall) reconEvents(ctx context.Context, now time.Time) []event.Event {
	if f.det == nil {
		return nil
	}
	probes, err := f.k.Probes()
	if err != nil {
		f.opt.Logger.Warn("reading recon sets", "err", err)
		return nil
	}
	in := make([]recon.Probe, len(probes))
	for i, p := range probes {
		in[i] = recon.Probe{Src: p.Src, Dst: p.Dst, Proto: string(p.Proto), Flags: p.Flags, Port: p.Port}
	}
	var out []event.Event
	blocked := map[netip.Addr]bool{} // a source found scanning and sweeping is blocked once
	for _, fd := range f.det.Observe(now, in) {
		ev := f.reconEvent(fd)
		if ttl := f.compiled.Recon.Block; ttl > 0 && !blocked[fd.Src] {
			blocked[fd.Src] = true
			if err := f.k.Block([]nft.BlockEntry{{Prefix: netip.PrefixFrom(fd.Src, fd.Src.BitLen()), TTL: ttl}}); err != nil {
				f.blockFailures++
				ev.Action = ActionBlockFailed
				ev.Severity = event.SeverityHigh
				ev.Fields["block_error"] = err.Error()
			} else {
				ev.Action = "blocked"
				ev.Fields["blocked_for"] = ttl.String()
			}
		} else if ttl > 0 {
			ev.Action = "blocked"
			ev.Fields["blocked_for"] = ttl.String()
		}
		out = append(out, ev)
	}
	return out
}

// reconEvent describes a finding: who, what kind and types, which ports
// and which of this host's addresses.
func (f *Firewall) reconEvent(fd recon.Finding) event.Event {
	ports := make([]string, len(fd.Ports))
	for i, p := range fd.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	addrs := make([]string, len(fd.Addrs))
	for i, a := range fd.Addrs {
		addrs[i] = a.String()
	}
	types := strings.Join(fd.Types, ",")
	msg := fmt.Sprintf("%s (%s) from %s: %d ports", fd.Label, types, fd.Src, fd.Count)
	if fd.Kind == recon.KindSweep {
		msg = fmt.Sprintf("%s (%s) from %s: %d addresses of this host", fd.Label, types, fd.Src, fd.Count)
	}
	ev := f.event(event.KindFirewallScan, event.SeverityMedium, msg)
	ev.Src = &event.Endpoint{IP: fd.Src.String()}
	ev.Count = fd.Count
	ev.Action = "alerted"
	ev.Fields = map[string]string{"scan": fd.Kind, "scan_kind": fd.Label, "scan_types": types, "ports": strings.Join(ports, ","), "addresses": strings.Join(addrs, ",")}
	return ev
}

// dropEvents aggregates the packets dropped per rule since the last report
// into one event per rule, so a flood costs one event per interval.
func (f *Firewall) dropEvents(st *nft.State) []event.Event {
	var out []event.Event
	for _, name := range []string{"input", "output"} {
		ch := st.Chains[name]
		if ch == nil {
			continue
		}
		// Variants of one rule (IPv4, IPv6) share a tag: sum them.
		sums := map[string]uint64{}
		var order []string
		for _, rc := range ch.Counters {
			tag := strings.TrimPrefix(rc.Comment, "mamori:"+f.plan.Fingerprint+" ")
			isDefaultDrop := tag == "default" && ((!ch.Out && f.compiled.DefaultIn == policy.ActionDeny) || (ch.Out && f.compiled.DefaultOut == policy.ActionDeny))
			if f.verdicts[tag] != "drop" && !isDefaultDrop {
				continue
			}
			if _, ok := sums[tag]; !ok {
				order = append(order, tag)
			}
			sums[tag] += rc.Packets
		}
		dir := "in"
		if ch.Out {
			dir = "out"
		}
		for _, tag := range order {
			key := name + "/" + tag
			prev := f.drops[key]
			f.drops[key] = sums[tag]
			if sums[tag] <= prev {
				continue
			}
			n := sums[tag] - prev
			ev := f.event(event.KindFirewallDrop, event.SeverityLow, fmt.Sprintf("%d packets dropped (%s) by %s", n, dir, tag))
			ev.Action = "denied"
			ev.Count = int(n)
			ev.Rule = &event.Rule{ID: strings.Fields(tag)[0], Name: tag}
			ev.Fields = map[string]string{"direction": dir}
			out = append(out, ev)
		}
	}
	return out
}

// kernelFingerprint is the plan fingerprint the kernel's rule comments
// carry ("mamori:<fp> <tag>"), or "".
func kernelFingerprint(st *nft.State) string {
	for _, ch := range st.Chains {
		for _, c := range ch.Comments {
			if rest, ok := strings.CutPrefix(c, "mamori:"); ok {
				fp, _, _ := strings.Cut(rest, " ")
				return fp
			}
		}
	}
	return ""
}

func ttlText(d time.Duration) string {
	if d <= 0 {
		return "until unblocked"
	}
	return d.String()
}

func (f *Firewall) event(kind event.Kind, sev event.Severity, msg string) event.Event {
	ev := event.Event{Kind: kind, Severity: sev, Module: "firewall", Host: f.opt.Hostname, Message: msg}
	ev.Fill()
	return ev
}
