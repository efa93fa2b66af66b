// Package cli builds mamori's commands: one file per command group, each
// turning flags into an engine or runtime call.
package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X ...cli.Version=…".
var Version = "0.1.0-dev"

// ExitError carries a process exit code through cobra (scanners exit 1 on a
// finding, 2 on an error, like clamscan and aide).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// NewRoot returns the root command with every command group attached.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "mamori",
		Short:         "mamori protects cloud servers: firewall, IPS, log inspection, integrity, anti-malware, DNS firewall",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	var verbose bool
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		lvl := slog.LevelInfo
		if verbose {
			lvl = slog.LevelDebug
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
	}
	root.AddCommand(
		newUpCmd(),
		newManagerCmd(),
		newAgentCmd(),
		newScanCmd(),
		newQuarantineCmd(),
		newIntegrityCmd(),
		newLogsCmd(),
		newFirewallCmd(),
	)
	return root
}

// Main runs the root command and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRoot()
	root.SetArgs(args)
	stopProfile := startProfile()
	err := root.ExecuteContext(ctx)
	stopProfile()
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(os.Stderr, "mamori:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(os.Stderr, "mamori:", err)
	return 2
}
