package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/agent/selfprotect"
	"github.com/mamori-sec/mamori/event"
)

// watchLoop reports changes to the agent's binary, identity and
// configuration files.
func (a *Agent) watchLoop(ctx context.Context) {
	files := append([]string(nil), a.cfg.WatchFiles...)
	if exe, err := os.Executable(); err == nil {
		files = append(files, exe)
	}
	files = append(files, filepath.Join(a.cfg.DataDir, client.CAFile), filepath.Join(a.cfg.DataDir, client.IdentityFile))
	w := selfprotect.NewWatcher(files)
	// The identity files must stay root-only; a chmod by someone else is
	// undone and reported.
	secrets := []string{a.cfg.DataDir}
	for _, f := range []string{client.ClientPEM, client.CAFile, client.IdentityFile, client.TokenFile, policyFile} {
		secrets = append(secrets, filepath.Join(a.cfg.DataDir, f))
	}
	go func() {
		t := time.NewTicker(a.cfg.WatchInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, p := range selfprotect.FixModes(secrets) {
				a.report(event.KindAgentSelfProtect, event.SeverityHigh,
					fmt.Sprintf("agent file %s was readable by others; made owner-only again", p),
					map[string]string{"path": p})
			}
		}
	}()
	w.Run(ctx, a.cfg.WatchInterval, func(changes []selfprotect.Change) {
		for _, c := range changes {
			// identity.json and ca.pem change legitimately on re-enrolment;
			// still reported, at a lower severity.
			sev := event.SeverityHigh
			if filepath.Dir(c.Path) == filepath.Clean(a.cfg.DataDir) {
				sev = event.SeverityMedium
			}
			e := event.Event{
				Kind: event.KindAgentSelfProtect, Severity: sev, Module: "agent", Action: "alerted",
				Message: fmt.Sprintf("agent file %s changed (%s)", c.Path, c.What),
				File:    &event.File{Path: c.Path},
				Changes: []event.Change{{Attr: c.What, Old: c.Old, New: c.New}},
			}
			if err := a.Emit(e); err != nil {
				a.log.Error("queueing self-protection event", "err", err)
			}
		}
	})
}
