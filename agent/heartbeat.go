package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

// heartbeatLoop keeps one long-poll heartbeat open at a time: the manager
// answers at the end of the wait (the periodic heartbeat) or as soon as it
// has news (a command, a new policy version), so "scan now" reaches the
// agent within seconds while an idle agent sends one request per interval.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	bo := client.Backoff{Min: a.cfg.RetryMin, Max: a.cfg.RetryMax}
	for ctx.Err() == nil {
		err := a.heartbeatOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			bo.Reset()
			continue
		}
		a.mu.Lock()
		a.linkErr = err.Error()
		a.mu.Unlock()
		a.log.Warn("heartbeat", "err", err)
		if errors.Is(err, client.ErrClone) {
			if rerr := a.reenrol(ctx, err); rerr != nil {
				a.log.Error("clone detected and re-enrolment impossible", "err", rerr)
				a.mu.Lock()
				a.linkErr = rerr.Error()
				a.mu.Unlock()
				sleep(ctx, a.cfg.RetryMax)
			}
			continue
		}
		sleep(ctx, bo.Next())
	}
}

func (a *Agent) heartbeatOnce(ctx context.Context) error {
	a.mu.Lock()
	cl, interval := a.cl, a.heartbeat
	a.mu.Unlock()
	wait := a.cfg.HeartbeatWait
	if wait <= 0 {
		// Whole seconds: "54s" reads the same to any server.
		wait = max(client.Jitter(interval, 0.1).Round(time.Second), time.Second)
	}
	// Host facts are read afresh: addresses change, and a cloned image
	// booted elsewhere has a new machine-id the manager must see.
	host := a.cfg.Host()
	a.mu.Lock()
	a.host = host
	a.mu.Unlock()
	hb := a.buildHeartbeat()
	resp, err := cl.Heartbeat(ctx, hb, wait)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.lastContact, a.linkErr, a.skew = time.Now().UTC(), "", resp.ClockSkewSeconds
	if resp.HeartbeatSeconds > 0 {
		a.heartbeat = heartbeatInterval(resp.HeartbeatSeconds)
	}
	a.mu.Unlock()
	a.metrics.heartbeats.Add(1)

	var errs []error
	if resp.PolicyVersion != "" && resp.PolicyVersion != hb.PolicyVersion {
		if err := a.syncPolicy(ctx, false); err != nil {
			errs = append(errs, err)
		} else if v := a.policyVersion(); v != resp.PolicyVersion {
			// The manager announced a version its policy endpoint does not
			// serve (yet): back off rather than long-poll in a tight loop.
			errs = append(errs, fmt.Errorf("manager announced policy %s but served %s", resp.PolicyVersion, v))
		}
	} else if a.packsMissing() {
		a.mu.Lock()
		p := a.policy
		a.mu.Unlock()
		if err := a.applyPolicy(ctx, p, false); err != nil {
			a.log.Warn("retrying rule packs", "err", err)
		}
	}
	for _, cmd := range resp.Commands {
		if err := a.runCommand(ctx, cmd); err != nil {
			errs = append(errs, err)
		}
	}
	if resp.RenewCertificate || a.certDue() {
		if err := a.renew(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// A failure here would make the manager answer the next long poll at
	// once with the same news: back off instead of spinning.
	return errors.Join(errs...)
}

func (a *Agent) buildHeartbeat() api.Heartbeat {
	st := a.ob.Stats()
	a.mu.Lock()
	defer a.mu.Unlock()
	hb := api.Heartbeat{Host: a.host, AgentTime: time.Now().UTC(), QueueDepth: st.Depth, Dropped: st.Dropped, PolicyError: a.policyErr}
	if a.policy != nil {
		hb.PolicyVersion = a.policy.Version
	}
	for _, p := range a.packs {
		hb.RulePacks = append(hb.RulePacks, p.Ref)
	}
	for _, n := range a.names {
		s := a.runners[n].status()
		hb.Modules = append(hb.Modules, api.ModuleState{Name: s.Name, State: string(s.State), Reason: s.Reason, Mode: s.Mode, RuleCount: s.RuleCount, LastError: s.LastError, Counters: s.Counters})
	}
	return hb
}

// runCommand executes one command and acknowledges it. A command seen
// before (an ack that got lost) is only acknowledged again.
func (a *Agent) runCommand(ctx context.Context, cmd api.Command) error {
	a.mu.Lock()
	cl, done := a.cl, a.doneCommands[cmd.ID]
	a.mu.Unlock()
	var ack api.CommandAck
	if !done {
		err := a.execute(ctx, cmd)
		ack = api.CommandAck{OK: err == nil}
		if err != nil {
			ack.Error = err.Error()
		}
		a.mu.Lock()
		if len(a.doneCommands) > 1000 {
			a.doneCommands = map[string]bool{}
		}
		a.doneCommands[cmd.ID] = true
		a.mu.Unlock()
	} else {
		ack = api.CommandAck{OK: true}
	}
	if err := cl.AckCommand(ctx, cmd.ID, ack); err != nil {
		return fmt.Errorf("acknowledging command %s: %w", cmd.ID, err)
	}
	return nil
}

func (a *Agent) execute(ctx context.Context, cmd api.Command) error {
	switch cmd.Type {
	case api.CommandUpdateNow:
		return a.syncPolicy(ctx, true)
	case api.CommandRenewCert:
		return a.renew(ctx)
	case api.CommandScanNow, api.CommandRebuildBaseline:
		target := cmd.Args["module"]
		if target == "" && cmd.Type == api.CommandRebuildBaseline {
			target = "integrity"
		}
		if target == "" {
			return fmt.Errorf("command %s: args.module missing", cmd.Type)
		}
		r, ok := a.runners[target]
		if !ok {
			return fmt.Errorf("command %s: no module %q", cmd.Type, target)
		}
		c, ok := r.mod.(Commander)
		if !ok {
			return fmt.Errorf("command %s: module %s does not take commands", cmd.Type, target)
		}
		return c.Command(ctx, cmd)
	}
	return fmt.Errorf("unknown command type %q", cmd.Type)
}

func (a *Agent) renew(ctx context.Context) error {
	a.mu.Lock()
	cl := a.cl
	a.mu.Unlock()
	if err := cl.Renew(ctx); err != nil {
		return err
	}
	a.log.Info("client certificate renewed", "not_after", cl.CertificateExpiry())
	return nil
}

// reenrol handles a clone report: with the enrolment token kept from the
// first enrolment the agent enrols as a new computer (the original keeps
// its identity); without one it reports and waits for an operator.
func (a *Agent) reenrol(ctx context.Context, cause error) error {
	a.mu.Lock()
	old := a.id
	a.mu.Unlock()
	token := client.SavedToken(a.cfg.DataDir)
	if token == "" {
		a.report(event.KindAgentIdentity, event.SeverityHigh,
			"the manager reports this agent's identity as a clone of another computer and no enrolment token is kept: run mamori agent enroll",
			map[string]string{"old_computer_id": old.ComputerID})
		return fmt.Errorf("%w; no enrolment token kept in %s: run mamori agent enroll", cause, a.cfg.DataDir)
	}
	caPEM, err := os.ReadFile(filepath.Join(a.cfg.DataDir, client.CAFile))
	if err != nil {
		return fmt.Errorf("re-enrolling: %w", err)
	}
	host := a.cfg.Host()
	id, err := client.Enroll(ctx, client.EnrollOptions{ManagerURL: old.ManagerURL, Token: token, CAPEM: caPEM, DataDir: a.cfg.DataDir, Host: host, KeepToken: true})
	if err != nil {
		if client.Permanent(err) && a.firstReport("agent.identity", err.Error()) {
			a.report(event.KindAgentIdentity, event.SeverityHigh,
				fmt.Sprintf("the manager reports this agent's identity as a clone and re-enrolment with the kept token failed: %v; run mamori agent enroll", err),
				map[string]string{"old_computer_id": old.ComputerID})
		}
		return fmt.Errorf("re-enrolling after clone report: %w", err)
	}
	cl, err := client.Load(a.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("re-enrolling: %w", err)
	}
	a.mu.Lock()
	prev := a.cl
	a.cl, a.id, a.host = cl, *id, host
	err = a.loadKeys()
	a.mu.Unlock()
	prev.Close()
	a.log.Warn("identity was a clone; enrolled as a new computer", "old", old.ComputerID, "new", id.ComputerID)
	a.report(event.KindAgentIdentity, event.SeverityHigh,
		fmt.Sprintf("the manager reported computer %s's identity on this machine (cloned image); enrolled as new computer %s", old.ComputerID, id.ComputerID),
		map[string]string{"old_computer_id": old.ComputerID, "new_computer_id": id.ComputerID})
	return err
}

// certDue reports whether the client certificate is in the last third of
// its life: the agent renews by itself then, so a manager that never asks
// (or an agent offline for a while) does not end with an expired identity.
func (a *Agent) certDue() bool {
	a.mu.Lock()
	cl := a.cl
	a.mu.Unlock()
	nb, na := cl.CertificateValidity()
	if na.IsZero() {
		return false
	}
	return time.Until(na) < na.Sub(nb)/3
}

func (a *Agent) policyVersion() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.policy == nil {
		return ""
	}
	return a.policy.Version
}

// heartbeatInterval bounds what the manager asks for: a typo of 1 s would
// turn ten thousand agents into a load test, an hour would make commands
// and policy changes slow to arrive if the long poll breaks.
func heartbeatInterval(seconds int) time.Duration {
	return time.Duration(min(max(seconds, 5), 3600)) * time.Second
}
