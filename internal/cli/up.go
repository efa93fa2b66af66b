package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/agent/modules"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager"
)

// upOptions are the flags of `mamori up`.
type upOptions struct {
	dataDir string
	listen  string
	db      string
	noAgent bool
	// modules seed the default policy on the first run (nil: upDefaultModules).
	modules api.PolicyModules
}

func newUpCmd() *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "run a manager (embedded SQLite) and a local agent in one process",
		Long: `up starts an all-in-one installation: a manager on embedded SQLite in
./mamori-data (or --data-dir), an admin API key printed once, and this host
enrolled as a computer with the default policy. Running it again reuses the
same data. Without root it still runs; modules that need root report
"unavailable" with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd.Context(), o, cmd.OutOrStdout(), slog.Default())
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "mamori-data", "directory for the manager's database and the local agent's state")
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8443", "manager listen address (loopback by default)")
	cmd.Flags().StringVar(&o.db, "db", "", `database: "" for SQLite in the data dir, or postgres://…`)
	cmd.Flags().BoolVar(&o.noAgent, "no-agent", false, "run only the manager")
	return cmd
}

// runUp is `mamori up`; ready, when set, is called once the agent is
// enrolled (tests use it).
func runUp(ctx context.Context, o upOptions, out io.Writer, log *slog.Logger) error {
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("resolving data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	if o.modules == nil {
		o.modules = upDefaultModules()
	}
	m, err := manager.New(ctx, manager.Config{DataDir: filepath.Join(dir, "manager"), DB: o.db, Listen: o.listen, DefaultPolicyModules: o.modules}, log.With("component", "manager"))
	if err != nil {
		return fmt.Errorf("starting manager: %w", err)
	}
	key, created, err := m.BootstrapAdmin(ctx)
	if err != nil {
		return fmt.Errorf("creating admin key: %w", err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, m.CAPEM(), 0o644); err != nil {
		return fmt.Errorf("writing CA certificate: %w", err)
	}

	fmt.Fprintf(out, "mamori is up.\n  manager API: %s/api/v1  (CA certificate: %s)\n", m.URL(), caFile)
	fmt.Fprintf(out, "  console:     %s/  (the web console arrives with a later release; the API is live)\n", m.URL())
	if created {
		fmt.Fprintf(out, "  admin API key (shown once, keep it): %s\n", key)
	} else {
		fmt.Fprintf(out, "  admin API key: created on the first run (see its output); reusing %s\n", dir)
	}

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := m.Run(ctx); err != nil {
			errc <- fmt.Errorf("manager: %w", err)
		}
		cancel()
	}()

	if !o.noAgent {
		agentDir := filepath.Join(dir, "agent")
		if !agent.Enrolled(agentDir) {
			tok, err := m.CreateEnrollmentToken(ctx, m.DefaultTenantID(), manager.WithTTL(time.Hour), manager.WithMaxUses(1))
			if err != nil {
				cancel()
				wg.Wait()
				return fmt.Errorf("creating enrolment token: %w", err)
			}
			if err := agent.Enroll(ctx, agent.EnrollOptions{ManagerURL: m.URL(), Token: tok, CAPEM: m.CAPEM(), DataDir: agentDir, Version: Version, KeepToken: false}); err != nil {
				cancel()
				wg.Wait()
				return fmt.Errorf("enrolling the local agent: %w", err)
			}
			fmt.Fprintf(out, "  local agent: enrolled (%s)\n", agentDir)
		} else {
			fmt.Fprintf(out, "  local agent: already enrolled (%s)\n", agentDir)
		}
		if os.Geteuid() != 0 {
			fmt.Fprintln(out, "  not running as root: modules that need root (firewall, on-access scanning, fanotify) report \"unavailable\"; see `mamori agent status --data-dir "+agentDir+"`")
		}
		a, err := agent.New(agent.Config{DataDir: agentDir, Modules: upModules(), Version: Version}, log.With("component", "agent"))
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("starting agent: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("agent: %w", err)
			}
		}()
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
	wg.Wait()
	close(errc)
	return <-errc
}

// upModules adapts the module factories to the agent's Config.
func upModules() map[string]func(agent.Env) agent.Module {
	out := map[string]func(agent.Env) agent.Module{}
	for name, f := range modules.All() {
		out[name] = f
	}
	return out
}

// upDefaultModules is the policy `mamori up` gives a fresh installation:
// every module on, with settings safe on a workstation or a new server. The
// firewall watches rather than denies (default allow, port-scan detection,
// active-response block sets), so `up` can never lock an operator out;
// tighten it through the policy API.
func upDefaultModules() api.PolicyModules {
	on := true
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	return api.PolicyModules{
		"antimalware": {Enabled: &on, Settings: map[string]json.RawMessage{
			"scan_paths": raw(`["/tmp","/var/tmp","/dev/shm"]`),
			"schedule":   raw(`"0 3 * * *"`),
		}},
		"integrity":  {Enabled: &on, Settings: map[string]json.RawMessage{"schedule": raw(`"24h"`)}},
		"loginspect": {Enabled: &on},
		"firewall": {Enabled: &on, Settings: map[string]json.RawMessage{
			"policy": raw(`{"defaults":{"in":"allow","out":"allow"},"recon":{"ports":20,"window":"60s"},"rules":[]}`),
		}},
	}
}
