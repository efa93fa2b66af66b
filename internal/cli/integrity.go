package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/integrity"
	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
	"github.com/mamori-sec/mamori/integrity/walk"
	"github.com/mamori-sec/mamori/integrity/watch"
	builtin "github.com/mamori-sec/mamori/rules/integrity"
)

// integrityFlags are shared by the integrity subcommands.
type integrityFlags struct {
	policies      []string
	baseline      string
	key           string
	root          string
	workers       int
	json          bool
	trustMetadata bool
	only          []string
	strict        bool
	force         bool
	noProgress    bool
}

func newIntegrityCmd() *cobra.Command {
	f := &integrityFlags{}
	cmd := &cobra.Command{
		Use:   "integrity",
		Short: "file integrity monitoring: tamper-evident baselines, checks, real-time watch",
		Long: `Build a baseline of the files a policy selects, check the filesystem against it,
accept changes (audited) and watch for changes in real time.

With PATH arguments and no --policy, those paths are watched with default
attributes (type, mode, owner, size, times, inode, links, symlink target,
xattrs, ACLs, SELinux label, sha256) and the baseline is kept in a default
location. With neither, the built-in Linux policy is used.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringArrayVar(&f.policies, "policy", nil, "policy YAML file (repeatable; \"builtin\" names the built-in Linux policy)")
	pf.StringVar(&f.baseline, "baseline", "", "baseline file (default: a file per policy in the data directory)")
	pf.StringVar(&f.key, "key", "", "MAC key file of the baseline (default: $MAMORI_INTEGRITY_KEY, else /etc/mamori/integrity.key as root, created 0600 by init; kept apart from the baselines)")
	pf.StringVar(&f.root, "root", "/", "filesystem root the policy paths are read under (fixtures, containers)")
	pf.IntVar(&f.workers, "workers", 0, "parallel workers (default: cores + 1)")
	pf.BoolVar(&f.json, "json", false, "print findings as JSON events, one per line")
	pf.BoolVar(&f.strict, "strict", false, "refuse a policy with any invalid rule instead of skipping it")
	pf.BoolVar(&f.noProgress, "no-progress", false, "no progress display on a terminal")
	check := &cobra.Command{
		Use:   "check [PATH…]",
		Short: "compare the filesystem with the baseline (exit 0 clean, 1 changes, 2 error)",
		RunE:  func(c *cobra.Command, args []string) error { return runIntegrity(c, f, args, "check") },
	}
	check.Flags().BoolVar(&f.trustMetadata, "trust-metadata", false, "do not rehash files whose size, mtime, ctime and inode are unchanged")
	check.Flags().StringArrayVar(&f.only, "only", nil, "check only under this path (repeatable)")
	update := &cobra.Command{
		Use:   "update [PATH…]",
		Short: "accept the current state into the baseline (all, or --only paths); audited; exit 2 if any item could not be recorded",
		RunE:  func(c *cobra.Command, args []string) error { return runIntegrity(c, f, args, "update") },
	}
	update.Flags().StringArrayVar(&f.only, "only", nil, "accept only under this path (repeatable)")
	update.Flags().BoolVar(&f.trustMetadata, "trust-metadata", false, "do not rehash files whose size, mtime, ctime and inode are unchanged")
	initCmd := &cobra.Command{
		Use:   "init [PATH…]",
		Short: "build the baseline (exit 2 if any item could not be recorded; the rest is kept)",
		RunE:  func(c *cobra.Command, args []string) error { return runIntegrity(c, f, args, "init") },
	}
	initCmd.Flags().BoolVar(&f.force, "force", false, "replace an existing baseline (audited)")
	cmd.AddCommand(initCmd, check, update, newIntegrityWatchCmd(f))
	return cmd
}

// integrityJob resolves flags and arguments into an engine config.
func integrityJob(f *integrityFlags, args []string, create bool) (integrity.Config, error) {
	var c integrity.Config
	pol, name, err := loadIntegrityPolicy(f, args)
	if err != nil {
		return c, &ExitError{Code: 2, Err: err}
	}
	for _, w := range pol.Warnings {
		fmt.Fprintln(os.Stderr, "mamori: policy:", w)
	}
	c.Policy = pol
	c.Root = f.root
	c.Workers = f.workers
	c.TrustMetadata = f.trustMetadata
	for _, o := range f.only {
		a, err := filepath.Abs(o)
		if err != nil {
			return c, &ExitError{Code: 2, Err: fmt.Errorf("resolving %s: %w", o, err)}
		}
		c.Only = append(c.Only, a)
	}
	c.Baseline = f.baseline
	if c.Baseline == "" {
		c.Baseline = filepath.Join(integrityDataDir(), name+".fimdb")
	}
	kp := f.key
	if kp == "" {
		kp = integrityKeyPath()
	}
	if filepath.Dir(kp) == filepath.Dir(c.Baseline) {
		fmt.Fprintf(os.Stderr, "mamori: warning: the key %s sits in the baseline's directory: whoever can write there can re-seal a forged baseline\n", kp)
	}
	if create {
		c.Key, err = baseline.LoadOrCreateKey(kp)
	} else {
		c.Key, err = baseline.LoadKey(kp)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && f.key == "" {
			if _, lerr := os.Stat(baseline.LegacyKeyPath(c.Baseline)); lerr == nil {
				err = fmt.Errorf("%w (a key beside the baseline, %s, is no longer used by default since whoever can write the baseline can replace it too; if you trust it, move it to %s or pass --key)", err, baseline.LegacyKeyPath(c.Baseline), kp)
			}
		}
		return c, &ExitError{Code: 2, Err: err}
	}
	return c, nil
}

func loadIntegrityPolicy(f *integrityFlags, args []string) (*policy.Policy, string, error) {
	if len(args) > 0 && len(f.policies) > 0 {
		return nil, "", errors.New("give either --policy or paths, not both (use --only to narrow a policy)")
	}
	if len(args) > 0 {
		var abs []string
		for _, a := range args {
			p, err := filepath.Abs(a)
			if err != nil {
				return nil, "", fmt.Errorf("resolving %s: %w", a, err)
			}
			abs = append(abs, p)
		}
		sort.Strings(abs)
		pol, err := policy.ForPaths(abs)
		if err != nil {
			return nil, "", err
		}
		sum := sha256.Sum256([]byte(strings.Join(abs, "\x00")))
		return pol, "paths-" + hex.EncodeToString(sum[:6]), nil
	}
	if len(f.policies) == 0 {
		pol, err := policy.Parse(builtin.LinuxName, builtin.Linux, f.strict)
		return pol, "linux-default", err
	}
	files := map[string][]byte{}
	var order []string
	for _, p := range f.policies {
		var b []byte
		var err error
		if p == "builtin" {
			p, b = builtin.LinuxName, builtin.Linux
		} else if b, err = os.ReadFile(p); err != nil {
			return nil, "", fmt.Errorf("reading policy: %w", err)
		}
		files[p] = b
		order = append(order, p)
	}
	if len(order) == 1 {
		pol, err := policy.Parse(order[0], files[order[0]], f.strict)
		if err != nil {
			return nil, "", err
		}
		return pol, pol.Name, nil
	}
	name := strings.TrimSuffix(filepath.Base(order[len(order)-1]), filepath.Ext(order[len(order)-1]))
	pol, err := policy.ParseMany(name, files, order, f.strict)
	return pol, name, err
}

// integrityDataDir is where baselines live by default: the agent's data
// directory as root, the user's state directory otherwise.
func integrityDataDir() string {
	if d := os.Getenv("MAMORI_INTEGRITY_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/mamori/integrity"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "mamori", "integrity")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "mamori", "integrity")
}

// integrityKeyPath is where the baseline MAC key lives by default: apart
// from the baselines (see the threat model in package integrity), so being
// able to write the baseline directory is not enough to re-seal a forged
// baseline.
func integrityKeyPath() string {
	if k := os.Getenv("MAMORI_INTEGRITY_KEY"); k != "" {
		return k
	}
	if os.Geteuid() == 0 {
		return "/etc/mamori/integrity.key"
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "mamori", "integrity.key")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "mamori", "integrity.key")
}

func runIntegrity(cmd *cobra.Command, f *integrityFlags, args []string, op string) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := integrityJob(f, args, op == "init")
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if op == "init" && !f.force {
		if _, err := os.Stat(c.Baseline); err == nil {
			return &ExitError{Code: 2, Err: fmt.Errorf("baseline %s exists: use `mamori integrity update` to accept changes, or init --force to rebuild it", c.Baseline)}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return &ExitError{Code: 2, Err: err}
		}
	}
	if os.Getenv("GOGC") == "" {
		// The baseline is one large live heap: a tighter GC target keeps
		// peak memory well under AIDE's for a little CPU.
		debug.SetGCPercent(50)
	}
	c.Stats = &walk.Stats{}
	stopProgress := startProgress(f, c.Stats)
	var rep *integrity.Report
	switch op {
	case "init":
		rep, err = integrity.Init(ctx, c)
	case "check":
		rep, err = integrity.Check(ctx, c)
	case "update":
		rep, err = integrity.Update(ctx, c)
	}
	stopProgress()
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("%s: %w", op, err)}
	}
	host, _ := os.Hostname()
	if rep.PolicyChanged && op != "init" {
		fmt.Fprintln(os.Stderr, "mamori: warning: the baseline was built under another policy; additions and removals may come from the policy change")
	}
	if op == "init" || op == "update" {
		kind := event.KindIntegrityBaselineUpdate
		if op == "init" {
			kind = event.KindIntegrityBaselineInit
		}
		ev := integrity.AuditEvent(kind, rep, c.Baseline, c.Only, integrity.CurrentActor("cli"), host)
		if err := integrity.AppendAudit(integrity.AuditPath(c.Baseline), ev); err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		if f.json {
			json.NewEncoder(out).Encode(ev)
		}
	}
	if op == "init" {
		// Init reports only what it could not record.
		errsOnly := &integrity.Report{Findings: rep.Findings}
		printFindings(out, f.json, errsOnly, host)
	} else {
		printFindings(out, f.json, rep, host)
	}
	printSummary(os.Stderr, op, c, rep)
	// Per-item errors (permission denied, vanished, unreadable) leave the
	// run incomplete: everything else is reported above, but the exit code
	// says error, ahead of "changes", so a script never takes an
	// incomplete check for a clean one.
	if n := rep.Counts()[integrity.Error]; n > 0 {
		return &ExitError{Code: 2, Err: fmt.Errorf("%s: %d items could not be recorded (listed above)", op, n)}
	}
	if op == "check" && rep.Changes() {
		return &ExitError{Code: 1}
	}
	return nil
}

func printSummary(w io.Writer, op string, c integrity.Config, rep *integrity.Report) {
	n := rep.Counts()
	secs := rep.Elapsed.Seconds()
	mb := float64(c.Stats.Bytes.Load()) / 1e6
	verb := map[string]string{"init": "recorded", "check": "checked", "update": "updated baseline: accepted the changes below after walking"}[op]
	fmt.Fprintf(w, "%s %d entries (%d files, %.0f MB, %d hashed) in %.2fs (%.0f files/s, %.0f MB/s): %d added, %d removed, %d changed, %d errors; baseline %s\n",
		verb, rep.Entries, c.Stats.Files.Load(), mb, c.Stats.Hashed.Load(), secs, float64(c.Stats.Files.Load())/max(secs, 1e-9), mb/max(secs, 1e-9),
		n[integrity.Added], n[integrity.Removed], n[integrity.Changed], n[integrity.Error], c.Baseline)
	if rep.Saved > 0 {
		fmt.Fprintf(w, "baseline written and synced in %.2fs\n", rep.Saved.Seconds())
	}
}

// printFindings writes findings as a table (old → new per attribute) or as
// JSON events.
func printFindings(w io.Writer, asJSON bool, rep *integrity.Report, host string) {
	if asJSON {
		enc := json.NewEncoder(w)
		for i := range rep.Findings {
			enc.Encode(rep.Findings[i].Event(host))
		}
		return
	}
	if len(rep.Findings) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANGE\tPATH\tATTRIBUTE\tOLD → NEW")
	for _, fd := range rep.Findings {
		p := integrity.DisplayPath(fd.Path)
		switch fd.What {
		case integrity.Changed:
			for i, ch := range fd.Changes {
				what, path := fd.What, p
				if i > 0 {
					what, path = "", ""
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s → %s\n", what, path, ch.Attr, short(ch.Old), short(ch.New))
			}
		case integrity.Error:
			fmt.Fprintf(tw, "%s\t%s\t\t%s\n", fd.What, p, fd.Err)
		default:
			fmt.Fprintf(tw, "%s\t%s\t\t\n", fd.What, p)
		}
	}
	tw.Flush()
}

// short keeps digests and long values readable in the table; --json has
// them in full.
func short(s string) string {
	if s == "" {
		return "-"
	}
	if len(s) > 40 {
		return s[:32] + "…"
	}
	return s
}

// startProgress shows a running count on a terminal, on stderr.
func startProgress(f *integrityFlags, st *walk.Stats) (stop func()) {
	if f.noProgress || !term.IsTerminal(int(os.Stderr.Fd())) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t0 := time.Now()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			case <-tick.C:
				s := time.Since(t0).Seconds()
				mb := float64(st.Bytes.Load()) / 1e6
				fmt.Fprintf(os.Stderr, "\r\033[K%d files, %d dirs, %.0f MB, %.0f MB/s, %d errors", st.Files.Load(), st.Dirs.Load(), mb, mb/s, st.Errors.Load())
			}
		}
	}()
	return func() { close(done); <-finished }
}

func newIntegrityWatchCmd(f *integrityFlags) *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "watch [PATH…]",
		Short: "report changes in real time, verified against the baseline, with the process behind them",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := integrityJob(f, args, false)
			if err != nil {
				return err
			}
			b, err := baseline.Load(c.Baseline, c.Key)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			host, _ := os.Hostname()
			w, err := watch.New(watch.Config{Policy: c.Policy, Baseline: b, Root: c.Root, Mode: mode, Host: host})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			fmt.Fprintf(os.Stderr, "mamori: watching %d paths with %s against %s\n", len(c.Policy.Rules), w.Mode(), c.Baseline)
			if h := w.Health(); h != "" {
				fmt.Fprintln(os.Stderr, "mamori: warning:", h)
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			err = w.Run(cmd.Context(), func(ch watch.Change) {
				if f.json {
					enc.Encode(ch.Event(host))
					return
				}
				who := "process unknown"
				if len(ch.Actors) > 0 {
					a := ch.Actors[len(ch.Actors)-1]
					who = fmt.Sprintf("pid %d %s uid %d (%s)", a.PID, a.Exe, a.UID, a.User)
					if a.Unknown != "" {
						who = fmt.Sprintf("pid %d, process unknown: %s", a.PID, a.Unknown)
					}
				}
				var attrs []string
				for _, x := range ch.Changes {
					attrs = append(attrs, x.Attr+" "+short(x.Old)+" → "+short(x.New))
				}
				fmt.Fprintf(out, "%s %s %s by %s %s\n", ch.Reported.Format(time.RFC3339Nano), ch.What, integrity.DisplayPath(ch.Path), who, strings.Join(attrs, "; "))
			})
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("watching: %w", err)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "", "force fanotify or inotify (default: fanotify as root, inotify otherwise)")
	return cmd
}
