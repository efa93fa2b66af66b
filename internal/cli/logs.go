package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/logs"
	"github.com/mamori-sec/mamori/logs/decode"
	"github.com/mamori-sec/mamori/logs/sigma"
	"github.com/mamori-sec/mamori/logs/source"
)

type logsRuleFlags struct {
	rules     []string
	noBuiltin bool
	strict    bool
	decoders  []string
	tz        string
}

func (f *logsRuleFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&f.rules, "rules", nil, "Sigma rule file or directory (repeatable); added to the built-in pack")
	cmd.Flags().BoolVar(&f.noBuiltin, "no-builtin", false, "do not load the built-in rule pack")
	cmd.Flags().BoolVar(&f.strict, "strict", false, "fail on the first rule that does not load")
	cmd.Flags().StringSliceVar(&f.decoders, "decoders", nil, "YAML file of user-defined decoders (repeatable)")
	cmd.Flags().StringVar(&f.tz, "tz", "", "time zone of timestamps without one (default: local)")
}

func (f *logsRuleFlags) load(w io.Writer) (*sigma.Set, []*decode.Custom, *time.Location, error) {
	set, err := logs.LoadRules(f.rules, f.noBuiltin, f.strict)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, e := range set.Errors {
		fmt.Fprintf(w, "mamori: rule skipped: %v\n", e)
	}
	var decs []*decode.Custom
	for _, p := range f.decoders {
		d, err := decode.LoadCustom(p)
		if err != nil {
			return nil, nil, nil, err
		}
		decs = append(decs, d...)
	}
	loc := time.Local
	if f.tz != "" {
		if loc, err = time.LoadLocation(f.tz); err != nil {
			return nil, nil, nil, fmt.Errorf("loading time zone: %w", err)
		}
	}
	return set, decs, loc, nil
}

func newLogsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "log inspection: decode logs, match Sigma rules and correlations, alert and block",
	}
	cmd.AddCommand(newLogsAnalyzeCmd(), newLogsWatchCmd(), newLogsRulesCmd())
	return cmd
}

// printer writes alerts as JSON lines or as one readable line each.
type printer struct {
	w      *bufio.Writer
	asJSON bool
	n      atomic.Int64
}

func (p *printer) emit(ev event.Event) {
	p.n.Add(1)
	if p.asJSON {
		b, _ := json.Marshal(ev)
		p.w.Write(b)
		p.w.WriteByte('\n')
		return
	}
	fmt.Fprintf(p.w, "%s %-8s %s rule=%s", ev.Time.Format(time.RFC3339), ev.Severity, ev.Message, ev.Rule.ID)
	if ev.User != nil {
		fmt.Fprintf(p.w, " user=%s", ev.User.Name)
	}
	if ev.Action == "blocked" {
		fmt.Fprintf(p.w, " action=blocked")
	}
	p.w.WriteByte('\n')
	for _, l := range ev.Evidence {
		fmt.Fprintf(p.w, "    | %s\n", l)
	}
}

func newLogsAnalyzeCmd() *cobra.Command {
	var rf logsRuleFlags
	var asJSON, noProgress bool
	var maxLine int
	cmd := &cobra.Command{
		Use:   "analyze FILE... (\"-\" for stdin)",
		Short: "analyse old logs (plain or gzip'd) for forensics; exit 1 when something alerted",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stderr := cmd.ErrOrStderr()
			set, decs, loc, err := rf.load(stderr)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if os.Getenv("GOGC") == "" {
				// A one-shot batch: trade a little memory for less GC work.
				debug.SetGCPercent(400)
			}
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			defer out.Flush()
			p := &printer{w: out, asJSON: asJSON}
			eng := logs.New(cmd.Context(), logs.Config{Rules: set, Location: loc, Decoders: decs}, p.emit)
			start := time.Now()
			var truncated int64
			for _, path := range args {
				n, err := analyzeOne(cmd.Context(), eng, path, maxLine, stderr, !noProgress)
				truncated += n
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
			}
			out.Flush()
			st := eng.Stats()
			el := time.Since(start)
			loaded, active, failed := set.Stats()
			fmt.Fprintf(stderr, "mamori logs: %d lines (%d decoded, %d undecoded, %d truncated, %d invalid UTF-8) in %.2fs (%.0f lines/s); %d alerts; rules %d loaded (%d active), %d skipped\n",
				st.Lines, st.Decoded, st.Undecoded, truncated, st.InvalidUTF8, el.Seconds(), float64(st.Lines)/el.Seconds(), st.Alerts, loaded, active, failed)
			if st.Alerts > 0 {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print alerts as JSON lines (mamori event model)")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no progress bar even on a terminal")
	cmd.Flags().IntVar(&maxLine, "max-line", source.DefaultMaxLine, "longest line kept, in bytes (the rest is dropped)")
	return cmd
}

func analyzeOne(ctx context.Context, eng *logs.Engine, path string, maxLine int, stderr io.Writer, progress bool) (int64, error) {
	if path == "-" {
		eng.SetRef(time.Time{})
		return eng.Analyze(ctx, os.Stdin, "stdin", maxLine)
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("analysing: %w", err)
	}
	// RFC 3164 lines have no year: take it from when the file was written.
	eng.SetRef(st.ModTime())
	var read int64
	rc, err := source.OpenFile(path, &read)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var bar *progressBar
	if progress {
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			bar = &progressBar{w: stderr, total: st.Size(), name: path, read: &read}
			bar.start()
			defer bar.stop()
		}
	}
	return eng.Analyze(ctx, rc, path, maxLine)
}

// progressBar redraws one status line on a terminal.
type progressBar struct {
	w     io.Writer
	total int64
	name  string
	read  *int64
	done  chan struct{}
	fin   chan struct{}
}

func (b *progressBar) start() {
	b.done, b.fin = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.fin)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.done:
				fmt.Fprint(b.w, "\r\033[K")
				return
			case <-t.C:
				r := atomic.LoadInt64(b.read)
				pct := 100 * float64(r) / float64(max(b.total, 1))
				w := int(pct / 5)
				fmt.Fprintf(b.w, "\r\033[K[%s%s] %5.1f%% %s", strings.Repeat("#", min(w, 20)), strings.Repeat(".", 20-min(w, 20)), pct, b.name)
			}
		}
	}()
}

func (b *progressBar) stop() { close(b.done); <-b.fin }

func newLogsRulesCmd() *cobra.Command {
	var rf logsRuleFlags
	var verbose bool
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "load rules and report how many load, how many have a log source here, and why the others do not",
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := logs.LoadRules(rf.rules, rf.noBuiltin, rf.strict)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			w := cmd.OutOrStdout()
			loaded, active, failed := set.Stats()
			fmt.Fprintf(w, "rules: %d loaded (%d with a log source mamori reads), %d skipped\n", loaded, active, failed)
			reasons := map[string]int{}
			for _, e := range set.Errors {
				reasons[shortReason(e.Reason)]++
				if verbose {
					fmt.Fprintf(w, "  skipped %v\n", e)
				}
			}
			keys := make([]string, 0, len(reasons))
			for k := range reasons {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return reasons[keys[i]] > reasons[keys[j]] })
			for _, k := range keys {
				fmt.Fprintf(w, "  %4d  %s\n", reasons[k], k)
			}
			if verbose {
				for _, r := range set.Rules {
					fmt.Fprintf(w, "  rule %s %q active=%v author=%q (%s)\n", r.Ref(), r.Title, r.Active(), r.Author, r.Source)
				}
			}
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&verbose, "list", false, "list every rule and every skipped rule")
	return cmd
}

// shortReason groups skip reasons that differ only in details.
func shortReason(s string) string {
	if i := strings.Index(s, ": line "); i > 0 {
		s = s[:i]
	}
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

func newLogsWatchCmd() *cobra.Command {
	var rf logsRuleFlags
	var asJSON, journal, stdin, fromStart bool
	var files []string
	var state string
	cmd := &cobra.Command{
		Use:   "watch [--file GLOB]... [--journal] [--stdin]",
		Short: "follow logs live (tail -F, journald, stdin) and print alerts; read positions persist in --state",
		RunE: func(cmd *cobra.Command, args []string) error {
			files = append(files, args...)
			if len(files) == 0 && !journal && !stdin {
				return &ExitError{Code: 2, Err: fmt.Errorf("logs watch: nothing to watch: give --file, --journal or --stdin")}
			}
			set, decs, loc, err := rf.load(cmd.ErrOrStderr())
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			var mu sync.Mutex
			p := &printer{w: out, asJSON: asJSON}
			emit := func(ev event.Event) {
				mu.Lock()
				p.emit(ev)
				out.Flush()
				mu.Unlock()
			}
			host, _ := os.Hostname()
			eng := logs.New(cmd.Context(), logs.Config{Rules: set, Location: loc, Decoders: decs, Live: true, Host: host}, emit)
			var in io.Reader
			if stdin {
				in = os.Stdin
			}
			err = eng.Run(cmd.Context(), logs.Sources{Files: files, Journal: journal, FromStart: fromStart}, state, in)
			st := eng.Stats()
			fmt.Fprintf(cmd.ErrOrStderr(), "mamori logs: %d lines, %d alerts\n", st.Lines, st.Alerts)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().StringSliceVar(&files, "file", nil, "file or glob to follow (repeatable)")
	cmd.Flags().BoolVar(&journal, "journal", false, "follow the systemd journal")
	cmd.Flags().BoolVar(&stdin, "stdin", false, "read lines from standard input")
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "read files without a saved position from the start (default: from the end)")
	cmd.Flags().StringVar(&state, "state", "", "directory for read positions and the journal cursor (default: none, start at the end)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print alerts as JSON lines")
	return cmd
}
