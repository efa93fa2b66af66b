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
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/agent/modules"
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

[Install]
WantedBy=multi-user.target
`

func newAgentInstallCmd() *cobra.Command {
	var dir, binary, unitPath string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "write the systemd unit mamori-agent.service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("finding own binary: %w", err)}
				}
				binary = exe
			}
			var b strings.Builder
			t := template.Must(template.New("unit").Parse(unitTemplate))
			if err := t.Execute(&b, map[string]string{"Binary": binary, "DataDir": dir}); err != nil {
				return err
			}
			if dryRun {
				fmt.Fprint(cmd.OutOrStdout(), b.String())
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(unitPath), 0o755); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("writing unit: %w", err)}
			}
			if err := os.WriteFile(unitPath, []byte(b.String()), 0o644); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("writing unit: %w", err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nenable it with: systemctl daemon-reload && systemctl enable --now mamori-agent\n", unitPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "data-dir", agent.DefaultDataDir, "agent data directory")
	f.StringVar(&binary, "binary", "", "path of the mamori binary (default: this one)")
	f.StringVar(&unitPath, "unit", "/etc/systemd/system/mamori-agent.service", "where to write the unit")
	f.BoolVar(&dryRun, "dry-run", false, "print the unit instead of writing it")
	return cmd
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
