package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/firewall"
	"github.com/mamori-sec/mamori/firewall/nft"
	"github.com/mamori-sec/mamori/firewall/policy"
)

// fwFlags are the flags every firewall subcommand shares.
type fwFlags struct {
	stateDir string
	netns    string // a name under /run/netns, for tests and benchmarks
}

func (f *fwFlags) store() firewall.Store { return firewall.Store{Dir: f.stateDir} }

func (f *fwFlags) open() (*firewall.Firewall, error) {
	fd := -1
	if f.netns != "" {
		var err error
		fd, err = unix.Open(filepath.Join("/run/netns", f.netns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", f.netns, err)
		}
	}
	fw, err := firewall.Open(firewall.Options{NetNS: fd})
	if err != nil {
		return nil, &ExitError{Code: 2, Err: fmt.Errorf("firewall unavailable: %w", err)}
	}
	return fw, nil
}

// spawnRollback starts the detached process that rolls an unconfirmed
// apply back; tests replace it.
var spawnRollback = func(args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the shell that ran apply
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

func newFirewallCmd() *cobra.Command {
	f := &fwFlags{}
	cmd := &cobra.Command{
		Use:   "firewall",
		Short: "host firewall on nftables: apply policies, block addresses, test connections",
	}
	cmd.PersistentFlags().StringVar(&f.stateDir, "state-dir", "/var/lib/mamori/firewall", "where the applied policy and pending rollbacks are kept")
	cmd.PersistentFlags().StringVar(&f.netns, "netns", "", "work in the named network namespace (/run/netns/NAME)")
	cmd.AddCommand(fwApplyCmd(f), fwShowCmd(f), fwDiffCmd(f), fwTestCmd(f), fwBlockCmd(f), fwUnblockCmd(f), fwBlockedCmd(f), fwConfirmCmd(f), fwRollbackCmd(f))
	return cmd
}

func loadCompiled(path string) (*policy.Policy, *policy.Compiled, []policy.Warning, error) {
	p, err := policy.Load(path)
	if err != nil {
		return nil, nil, nil, &ExitError{Code: 2, Err: err}
	}
	c, warns, err := policy.Compile(p, policy.Options{})
	if err != nil {
		return nil, nil, nil, &ExitError{Code: 2, Err: fmt.Errorf("%s: %w", path, err)}
	}
	return p, c, warns, nil
}

func printWarnings(w io.Writer, warns []policy.Warning) {
	for _, x := range warns {
		fmt.Fprintln(w, "warning:", x.Message)
	}
}

func fwApplyCmd(f *fwFlags) *cobra.Command {
	var within time.Duration
	var dry, force bool
	cmd := &cobra.Command{
		Use:   "apply POLICY",
		Short: "apply a policy file (YAML or JSON) atomically; with --confirm-within, roll back unless confirmed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			// No GC tuning: with the policy decoded without yaml.Node trees,
			// a bigger heap (GOGC=400 was set here) cost more in faulting
			// in fresh memory than the collections it saved (~1.4 s vs
			// ~1.2 s CPU for a 10,000-rule apply, interleaved runs).
			sum := sha256.Sum256(src)
			source := hex.EncodeToString(sum[:])
			// Re-applying the file last applied, with nothing committed to
			// nftables since, is a no-op provable without parsing it.
			if m := f.store().LoadMark(); !dry && within <= 0 && m != nil && m.Source == source {
				if fw, err := f.open(); err == nil {
					fw.SetMark(m.Fingerprint, m.Gen)
					unchanged := fw.Unchanged(m.Fingerprint)
					fw.Close()
					if unchanged {
						fmt.Fprintf(cmd.OutOrStdout(), "policy %s already in force: nothing changed\n", m.Fingerprint)
						return nil
					}
				}
			}
			p, c, warns, err := loadCompiled(args[0])
			if err != nil {
				return err
			}
			printWarnings(cmd.ErrOrStderr(), warns)
			if dry {
				fmt.Fprint(cmd.OutOrStdout(), nft.Build(c).Text())
				return nil
			}
			fw, err := f.open()
			if err != nil {
				return err
			}
			defer fw.Close()
			forced := false // only then does the agent need to know who changed its table
			if err := fw.CheckNotAgentOwned(); err != nil {
				forced = true
				if !force {
					return &ExitError{Code: 2, Err: fmt.Errorf("%w; change the policy through the manager, or pass --force to apply anyway (the agent will report it as drift changed by the CLI and restore its policy)", err)}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v; applying anyway (--force)\n", err)
			}
			ctx := cmd.Context()
			if within <= 0 {
				changed, err := fw.ApplyAndRecord(ctx, f.store(), p, c)
				if err != nil {
					return err
				}
				// The plan's fingerprint comes from the Firewall: building
				// the plan again only to print it cost a tenth of an apply.
				fp := fw.PlanFingerprint()
				if forced {
					if err := fw.RecordCLIApply(fp); err != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
					}
				}
				if mfp, gen, ok := fw.Mark(); ok {
					f.store().SaveMark(firewall.Mark{Source: source, Fingerprint: mfp, Gen: gen})
				}
				if changed {
					fmt.Fprintf(cmd.OutOrStdout(), "applied policy %s (%d rules)\n", fp, len(c.Rules))
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "policy %s already in force: nothing changed\n", fp)
				}
				return nil
			}
			pend, _, err := fw.SafeApply(ctx, f.store(), p, within)
			if err != nil {
				return err
			}
			if forced {
				if err := fw.RecordCLIApply(fw.PlanFingerprint()); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", err)
				}
			}
			rb := []string{"firewall", "rollback", "--id", pend.ID, "--state-dir", f.stateDir}
			if f.netns != "" {
				rb = append(rb, "--netns", f.netns)
			}
			if err := spawnRollback(rb); err != nil {
				// Without the timer the safety net is gone: undo now.
				f.store().Confirm()
				return fmt.Errorf("starting the rollback timer: %w (run `mamori firewall apply` with the previous policy)", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied policy %s; run `mamori firewall confirm` before %s or it is rolled back\n", fw.PlanFingerprint(), pend.Deadline.Format(time.TimeOnly))
			return nil
		},
	}
	cmd.Flags().DurationVar(&within, "confirm-within", 0, "roll back unless `mamori firewall confirm` runs within this time (e.g. 60s)")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "validate and print the nftables ruleset instead of applying it")
	cmd.Flags().BoolVar(&force, "force", false, "apply even though a running agent's firewall module manages this firewall")
	return cmd
}

func fwConfirmCmd(f *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm",
		Short: "keep the policy applied with --confirm-within",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.store().Confirm(); err != nil {
				if errors.Is(err, firewall.ErrNoPending) {
					return &ExitError{Code: 1, Err: err}
				}
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "confirmed: the policy stays")
			return nil
		},
	}
}

func fwRollbackCmd(f *fwFlags) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:    "rollback",
		Short:  "wait for an unconfirmed apply's deadline and roll it back (started by apply)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fw, err := f.open()
			if err != nil {
				return err
			}
			defer fw.Close()
			rolled, err := fw.RollbackWhenDue(context.WithoutCancel(cmd.Context()), f.store(), id)
			if err != nil {
				return err
			}
			if rolled {
				fmt.Fprintln(cmd.OutOrStdout(), "rolled back the unconfirmed policy")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "pending apply ID")
	return cmd
}

func fwShowCmd(f *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "show the policy in force as nftables rules with their counters, and whether the kernel matches it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			p, err := f.store().Current()
			if err != nil {
				return err
			}
			fw, err := f.open()
			if err != nil {
				return err
			}
			defer fw.Close()
			st, err := fw.State()
			if err != nil {
				return err
			}
			fp := ""
			switch {
			case p == nil && !st.Exists:
				fmt.Fprintln(out, "no policy applied")
				return nil
			case p == nil:
				// Applied by the agent, or from another --state-dir.
				fmt.Fprintln(out, "no policy recorded in "+f.stateDir+"; table inet mamori holds:")
			default:
				c, _, err := policy.Compile(p, policy.Options{})
				if err != nil {
					return err
				}
				plan := nft.Build(c)
				fp = plan.Fingerprint
				fmt.Fprint(out, plan.Text())
				if diff := st.Diff(plan); len(diff) > 0 {
					fmt.Fprintln(out, "\nkernel DIFFERS from the policy:")
					for _, d := range diff {
						fmt.Fprintln(out, "  "+d)
					}
				} else {
					fmt.Fprintf(out, "\nkernel matches policy %s\n", plan.Fingerprint)
				}
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\nCHAIN\tRULE\tPACKETS\tBYTES")
			for _, name := range []string{"input", "output"} {
				if ch := st.Chains[name]; ch != nil {
					for _, rc := range ch.Counters {
						fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", name, strings.TrimPrefix(rc.Comment, "mamori:"+fp+" "), rc.Packets, rc.Bytes)
					}
				}
			}
			return tw.Flush()
		},
	}
}

func fwDiffCmd(f *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "diff POLICY",
		Short: "show what applying POLICY would change (exit 1 when something would)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, warns, err := loadCompiled(args[0])
			if err != nil {
				return err
			}
			printWarnings(cmd.ErrOrStderr(), warns)
			fw, err := f.open()
			if err != nil {
				return err
			}
			defer fw.Close()
			d, err := fw.Diff(c)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(d) == 0 {
				fmt.Fprintln(out, "no change: the kernel already holds this policy")
				return nil
			}
			for _, x := range d {
				fmt.Fprintln(out, "kernel:", x)
			}
			var old string
			if cur, err := f.store().Current(); err == nil && cur != nil {
				if cc, _, err := policy.Compile(cur, policy.Options{}); err == nil {
					old = nft.Build(cc).Text()
				}
			}
			writeLineDiff(out, old, nft.Build(c).Text())
			return &ExitError{Code: 1}
		},
	}
}

// writeLineDiff prints the lines only one side has, "-" for old and "+"
// for new; rule comments carry the policy fingerprint, so they are
// compared without it.
func writeLineDiff(w io.Writer, old, new string) {
	norm := func(s string) string {
		if i := strings.Index(s, `comment "mamori:`); i >= 0 {
			if j := strings.Index(s[i+16:], " "); j >= 0 {
				return s[:i+16] + s[i+16+j:]
			}
		}
		return s
	}
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[norm(l)]++
		}
		return m
	}
	o, n := count(old), count(new)
	for _, l := range strings.Split(old, "\n") {
		if k := norm(l); n[k] == 0 && l != "" {
			fmt.Fprintln(w, "-"+l)
		}
	}
	for _, l := range strings.Split(new, "\n") {
		if k := norm(l); o[k] == 0 && l != "" {
			fmt.Fprintln(w, "+"+l)
		}
	}
}

func fwTestCmd(f *fwFlags) *cobra.Command {
	var pol, dir, proto, src, dst, iface, state string
	var sport, dport int
	cmd := &cobra.Command{
		Use:   "test",
		Short: "would this connection be allowed, and by which rule? (exit 0 allowed, 1 denied)",
		Example: "  mamori firewall test --policy web.yaml --proto tcp --src 203.0.113.5 --dst 10.0.0.2 --dport 22\n" +
			"  mamori firewall test --dir out --proto udp --src 10.0.0.2 --dst 9.9.9.9 --dport 53",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var c *policy.Compiled
			if pol != "" {
				var err error
				if _, c, _, err = loadCompiled(pol); err != nil {
					return err
				}
			} else {
				p, err := f.store().Current()
				if err != nil {
					return err
				}
				if p == nil {
					return &ExitError{Code: 2, Err: errors.New("no policy applied: pass --policy FILE")}
				}
				if c, _, err = policy.Compile(p, policy.Options{}); err != nil {
					return err
				}
			}
			k := policy.Conn{Direction: policy.Direction(dir), Protocol: policy.Protocol(proto), Interface: iface}
			if k.Direction != policy.DirIn && k.Direction != policy.DirOut {
				return &ExitError{Code: 2, Err: fmt.Errorf("--dir: %q is not in or out", dir)}
			}
			var err error
			if k.Src, err = netip.ParseAddr(src); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--src: %w", err)}
			}
			if k.Dst, err = netip.ParseAddr(dst); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--dst: %w", err)}
			}
			if k.Src.Unmap().Is4() != k.Dst.Unmap().Is4() {
				return &ExitError{Code: 2, Err: errors.New("--src and --dst must be of one address family")}
			}
			for _, p := range []struct {
				name string
				v    int
				to   *uint16
			}{{"--sport", sport, &k.SrcPort}, {"--dport", dport, &k.DstPort}} {
				if p.v < 0 || p.v > 65535 {
					return &ExitError{Code: 2, Err: fmt.Errorf("%s: %d out of range 0-65535", p.name, p.v)}
				}
				*p.to = uint16(p.v)
			}
			switch state {
			case "new", "":
			case "established":
				k.State = policy.CtEstablished
			case "related":
				k.State = policy.CtRelated
			case "invalid":
				k.State = policy.CtInvalid
			default:
				return &ExitError{Code: 2, Err: fmt.Errorf("--state: %q is not new, established, related or invalid", state)}
			}
			d := c.Evaluate(k)
			out := cmd.OutOrStdout()
			for _, l := range d.Logged {
				fmt.Fprintf(out, "logged by %s\n", l.Label())
			}
			verdict := "DENIED"
			if d.Allowed {
				verdict = "ALLOWED"
			}
			fmt.Fprintf(out, "%s: %s\n", verdict, d.Reason)
			if !d.Allowed {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&pol, "policy", "", "policy file to test against (default: the policy in force)")
	fl.StringVar(&dir, "dir", "in", "direction: in or out")
	fl.StringVar(&proto, "proto", "tcp", "tcp, udp, icmp or icmpv6")
	fl.StringVar(&src, "src", "", "source address")
	fl.StringVar(&dst, "dst", "", "destination address")
	fl.IntVar(&sport, "sport", 0, "source port")
	fl.IntVar(&dport, "dport", 0, "destination port")
	fl.StringVar(&iface, "iface", "", "interface (input for in, output for out)")
	fl.StringVar(&state, "state", "new", "connection state: new, established, related, invalid")
	return cmd
}

func parsePrefixArg(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func fwBlockCmd(f *fwFlags) *cobra.Command {
	var ttl time.Duration
	var file string
	cmd := &cobra.Command{
		Use:   "block [ADDR|CIDR ...]",
		Short: "block addresses or networks (for --ttl, 0 = until unblocked); --file loads a list, one per line",
		RunE: func(cmd *cobra.Command, args []string) error {
			var es []nft.BlockEntry
			add := func(where, s string) error {
				p, err := parsePrefixArg(s)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("%s: %q is not an address or CIDR", where, s)}
				}
				es = append(es, nft.BlockEntry{Prefix: p, TTL: ttl})
				return nil
			}
			for _, a := range args {
				if err := add("argument", a); err != nil {
					return err
				}
			}
			if file != "" {
				fh, err := os.Open(file)
				if err != nil {
					return err
				}
				defer fh.Close()
				sc := bufio.NewScanner(fh)
				for n := 1; sc.Scan(); n++ {
					line := strings.TrimSpace(sc.Text())
					if i := strings.IndexByte(line, '#'); i >= 0 {
						line = strings.TrimSpace(line[:i])
					}
					if line == "" {
						continue
					}
					if err := add(file+":"+strconv.Itoa(n), line); err != nil {
						return err
					}
				}
				if err := sc.Err(); err != nil {
					return fmt.Errorf("reading %s: %w", file, err)
				}
			}
			if len(es) == 0 {
				return &ExitError{Code: 2, Err: errors.New("nothing to block: give addresses or --file")}
			}
			fw, err := f.open()
			if err != nil {
				return err
			}
			defer fw.Close()
			start := time.Now()
			if err := fw.BlockMany(es); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "blocked %d entries in %v\n", len(es), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long to block (e.g. 10m); 0 blocks until unblocked")
	cmd.Flags().StringVar(&file, "file", "", "file with one address or CIDR per line (# comments)")
	return cmd
}

func fwUnblockCmd(f *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "unblock ADDR|CIDR ...",
		Short: "remove addresses or networks from the block sets",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fw, err := f.open()
			if err != nil {
				return err
			}
			defer fw.Close()
			for _, a := range args {
				p, err := parsePrefixArg(a)
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("%q is not an address or CIDR", a)}
				}
				if err := fw.Unblock(cmd.Context(), p); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "unblocked", p)
			}
			return nil
		},
	}
}

func fwBlockedCmd(f *fwFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "blocked",
		Short: "list blocked addresses and networks with the time left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fw, err := f.open()
			if err != nil {
				return err
			}
			defer fw.Close()
			bl, err := fw.Blocked()
			if err != nil {
				return err
			}
			sort.Slice(bl, func(i, j int) bool { return bl[i].Prefix.Addr().Less(bl[j].Prefix.Addr()) })
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tEXPIRES IN")
			for _, b := range bl {
				left := "never"
				if b.Timeout > 0 {
					left = b.Expires.Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\n", b.Prefix, left)
			}
			return tw.Flush()
		},
	}
}
