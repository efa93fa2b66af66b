package cli

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/agent/budget"
	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/agent/modules"
	"github.com/mamori-sec/mamori/api"
)

func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "run or administer the agent",
	}
	cmd.AddCommand(newAgentEnrollCmd(), newAgentRunCmd(), newAgentStatusCmd(), newAgentInstallCmd(), newAgentPinCmd())
	return cmd
}

func newAgentEnrollCmd() *cobra.Command {
	var o agent.EnrollOptions
	var caFile, tokenFile string
	var noKeep bool
	cmd := &cobra.Command{
		Use:   "enroll --manager URL --token T (--ca-cert FILE | --ca-pin sha256:HEX)",
		Short: "enrol this host with a manager using an enrolment token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("reading token: %w", err)}
				}
				o.Token = strings.TrimSpace(string(b))
			}
			if o.Token == "" {
				o.Token = os.Getenv("MAMORI_ENROLL_TOKEN")
			}
			if o.ManagerURL == "" || o.Token == "" {
				return &ExitError{Code: 2, Err: fmt.Errorf("enroll needs --manager and --token (or --token-file, or MAMORI_ENROLL_TOKEN)")}
			}
			if caFile != "" {
				b, err := os.ReadFile(caFile)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("reading CA certificate: %w", err)}
				}
				o.CAPEM = b
			}
			if len(o.CAPEM) == 0 && o.CAPin == "" {
				return &ExitError{Code: 2, Err: fmt.Errorf("enroll needs --ca-cert FILE or --ca-pin sha256:HEX to authenticate the manager")}
			}
			o.KeepToken = !noKeep
			o.Version = Version
			if err := agent.Enroll(cmd.Context(), o); err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrolled with %s; identity stored in %s\nstart the agent with: mamori agent run --data-dir %s\n", o.ManagerURL, o.DataDir, o.DataDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ManagerURL, "manager", "", "manager URL, https://host:port")
	f.StringVar(&o.Token, "token", "", "enrolment token (visible in ps; prefer --token-file or MAMORI_ENROLL_TOKEN)")
	f.StringVar(&tokenFile, "token-file", "", "read the enrolment token from this file")
	f.StringVar(&caFile, "ca-cert", "", "the manager's CA certificate (PEM)")
	f.StringVar(&o.CAPin, "ca-pin", "", "sha256:HEX of the manager CA's public key (SPKI), as the manager prints it")
	f.StringVar(&o.DataDir, "data-dir", agent.DefaultDataDir, "agent data directory")
	f.DurationVar(&o.RetryFor, "retry-for", time.Minute, "keep retrying while the manager is unreachable, this long")
	f.BoolVar(&noKeep, "no-keep-token", false, "do not keep the token for automatic re-enrolment of cloned images")
	return cmd
}

func newAgentRunCmd() *cobra.Command {
	var cfg agent.Config
	cmd := &cobra.Command{
		Use:   "run",
		Short: "run the agent: modules, policy, events, heartbeat",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Version = Version
			cfg.Modules = map[string]func(agent.Env) agent.Module{}
			for name, f := range modules.All() {
				cfg.Modules[name] = f
			}
			a, err := agent.New(cfg, slog.Default())
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			if err := a.Run(cmd.Context()); err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", agent.DefaultDataDir, "agent data directory")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9464)")
	f.StringSliceVar(&cfg.WatchFiles, "watch", nil, "extra files (configuration) whose changes are reported")
	f.StringVar(&cfg.Root, "root", "/", "filesystem root for the modules")
	return cmd
}

func newAgentStatusCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the running agent's modules, policy, queue and last contact",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := agent.ReadStatus(dir)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStatus(cmd.OutOrStdout(), s, time.Now())
			if time.Since(s.Time) > time.Minute || !processAlive(s.PID) {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data-dir", agent.DefaultDataDir, "agent data directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(w io.Writer, s agent.Status, now time.Time) {
	age := now.Sub(s.Time).Round(time.Second)
	running := "running"
	switch {
	case !processAlive(s.PID):
		running = fmt.Sprintf("NOT RUNNING (pid %d is gone; status from %v ago)", s.PID, age)
	case age > time.Minute:
		running = fmt.Sprintf("NOT RUNNING? status is %v old", age)
	}
	fmt.Fprintf(w, "agent:        %s (pid %d, version %s)\n", running, s.PID, s.Version)
	fmt.Fprintf(w, "computer:     %s at %s\n", s.ComputerID, s.ManagerURL)
	pv := s.PolicyVersion
	if pv == "" {
		pv = "(none yet)"
	}
	fmt.Fprintf(w, "policy:       %s\n", pv)
	if s.PolicyError != "" {
		fmt.Fprintf(w, "policy error: %s\n", s.PolicyError)
	}
	for _, p := range s.RulePacks {
		fmt.Fprintf(w, "rule pack:    %s %s\n", p.Name, p.Version)
	}
	fmt.Fprintf(w, "queue:        %d events (%d bytes), %d dropped\n", s.QueueDepth, s.QueueBytes, s.Dropped)
	lc := "never"
	if !s.LastContact.IsZero() {
		lc = fmt.Sprintf("%s (%v ago)", s.LastContact.Format(time.RFC3339), now.Sub(s.LastContact).Round(time.Second))
	}
	fmt.Fprintf(w, "last contact: %s\n", lc)
	if s.LinkError != "" {
		fmt.Fprintf(w, "link error:   %s\n", s.LinkError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nMODULE\tSTATE\tMODE\tRULES\tDETAIL")
	for _, m := range s.Modules {
		detail := m.Reason
		if detail == "" {
			detail = m.LastError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.Name, m.State, m.Mode, m.RuleCount, detail)
	}
	tw.Flush()
}

const unitTemplate = `[Unit]
Description=mamori agent (workload protection)
Documentation=https://github.com/mamori-sec/mamori
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={{.Binary}} agent run --data-dir {{.DataDir}}
Restart=always
RestartSec=5
# The agent needs root for fanotify, nftables and reading every file; it
# keeps its own data root-only.
User=root
UMask=0077
LimitNOFILE=65536
KillMode=mixed
TimeoutStopSec=30
# Resource cap from the agent's budget ({{.BudgetSource}}); the kernel
# enforces it on top of the scans' own throttling. Re-run
# "mamori agent install" after changing the budget.
{{.Limits}}
[Install]
WantedBy=multi-user.target
`

// systemdRunDir exists while systemd is the running init (sd_booted(3));
// a variable so tests can point it elsewhere.
var systemdRunDir = "/run/systemd/system"

// unitData fills unitTemplate.
type unitData struct {
	Binary, DataDir, BudgetSource, Limits string
}

func renderUnit(d unitData) (string, error) {
	var b strings.Builder
	t := template.Must(template.New("unit").Parse(unitTemplate))
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("rendering unit: %w", err)
	}
	return b.String(), nil
}

// cachedBudget reads the budget of the policy the agent last applied, from
// the policy.json the agent package keeps in its data directory (its name
// is private there; the format is api.EffectivePolicy).
func cachedBudget(dataDir string) (api.Budget, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "policy.json"))
	if err != nil {
		return api.Budget{}, false
	}
	var p api.EffectivePolicy
	if json.Unmarshal(b, &p) != nil {
		return api.Budget{}, false
	}
	return p.Budget, true
}

func newAgentInstallCmd() *cobra.Command {
	var dir, binary, unitPath, memMax string
	var cpuPercent int
	var idleIO, dryRun, noStart bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "write the systemd unit mamori-agent.service and enable it",
		Long: `Writes the systemd unit, with a cgroup v2 resource cap (CPUQuota, MemoryMax,
IOWeight) derived from the agent's budget: the cached policy's when the agent
has one, else the flags' defaults. When systemd is running it then runs
"systemctl daemon-reload" and "systemctl enable --now" for the unit, unless
--no-start is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("finding own binary: %w", err)}
				}
				binary = exe
			}
			mem, err := budget.ParseBytes(memMax)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--memory-max: %w", err)}
			}
			if cpuPercent < 0 || cpuPercent > 100 {
				return &ExitError{Code: 2, Err: fmt.Errorf("--cpu-percent %d: want 0..100", cpuPercent)}
			}
			source := "defaults"
			// A zero budget cannot be told from an unset one (the default
			// policy sets none), so only a budget that says something
			// replaces the defaults; --cpu-percent 0 removes the CPU cap.
			if b, ok := cachedBudget(dir); ok && (b.CPUPercent > 0 || b.IdleIO) {
				source = "cached policy"
				if !cmd.Flags().Changed("cpu-percent") {
					cpuPercent = b.CPUPercent
				}
				if !cmd.Flags().Changed("idle-io") {
					idleIO = b.IdleIO
				}
			}
			if cmd.Flags().Changed("cpu-percent") || cmd.Flags().Changed("idle-io") {
				source += " and flags"
			}
			unit, err := renderUnit(unitData{Binary: binary, DataDir: dir, BudgetSource: source,
				Limits: budget.ServiceLimitsFor(cpuPercent, idleIO, mem).Directives()})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if dryRun {
				fmt.Fprint(out, unit)
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(unitPath), 0o755); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("writing unit: %w", err)}
			}
			if err := os.WriteFile(unitPath, []byte(unit), 0o644); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("writing unit: %w", err)}
			}
			fmt.Fprintf(out, "wrote %s\n", unitPath)
			name := filepath.Base(unitPath)
			enable := "systemctl daemon-reload && systemctl enable --now " + name
			switch {
			case noStart:
				fmt.Fprintf(out, "not enabled or started (--no-start); to do it: %s\n", enable)
				return nil
			case !isDir(systemdRunDir):
				fmt.Fprintf(out, "systemd is not running here (no %s): the unit was not enabled.\nOn a systemd host run: %s\nor start the agent directly: %s agent run --data-dir %s\n", systemdRunDir, enable, binary, dir)
				return nil
			}
			for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", name}} {
				fmt.Fprintf(out, "running: systemctl %s\n", strings.Join(args, " "))
				c := exec.CommandContext(cmd.Context(), "systemctl", args...)
				c.Stdout, c.Stderr = out, cmd.ErrOrStderr()
				if err := c.Run(); err != nil {
					return &ExitError{Code: 1, Err: fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)}
				}
			}
			fmt.Fprintf(out, "%s enabled and started; check it with: systemctl status %s\n", name, name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "data-dir", agent.DefaultDataDir, "agent data directory")
	f.StringVar(&binary, "binary", "", "path of the mamori binary (default: this one)")
	f.StringVar(&unitPath, "unit", "/etc/systemd/system/mamori-agent.service", "where to write the unit")
	f.BoolVar(&dryRun, "dry-run", false, "print the unit instead of writing it")
	f.BoolVar(&noStart, "no-start", false, "only write the unit: no daemon-reload, enable or start")
	f.IntVar(&cpuPercent, "cpu-percent", budget.DefaultCPUPercent, "scan CPU budget, percent of one core (0 = no cap); default: the cached policy's, else this")
	f.BoolVar(&idleIO, "idle-io", true, "idle I/O budget (low IOWeight); default: the cached policy's, else this")
	f.StringVar(&memMax, "memory-max", "1G", "MemoryMax of the service (K, M, G suffixes; 0 = none)")
	return cmd
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// processAlive reports whether pid exists (signal 0 sends nothing).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func newAgentPinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ca-pin CA_FILE",
		Short: "print the --ca-pin value (sha256 of the public key) of a manager CA certificate",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("reading CA certificate: %w", err)}
			}
			blk, _ := pem.Decode(b)
			if blk == nil || blk.Type != "CERTIFICATE" {
				return &ExitError{Code: 2, Err: fmt.Errorf("reading CA certificate %s: no PEM certificate", args[0])}
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("reading CA certificate %s: %w", args[0], err)}
			}
			fmt.Fprintln(cmd.OutOrStdout(), client.SPKIPin(c))
			return nil
		},
	}
}
