package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/malware"
	"github.com/mamori-sec/mamori/malware/quarantine"
)

type scanFlags struct {
	dbs            []string
	noDefault      bool
	strict         bool
	json           bool
	exclude        []string
	maxFileSize    string
	jobs           int
	infectedOnly   bool
	action         string
	quarantineDir  string
	followSymlinks bool
	showIssues     bool
	noArchive      bool
	watch          bool
}

func newScanCmd() *cobra.Command {
	var f scanFlags
	cmd := &cobra.Command{
		Use:   "scan PATH...",
		Short: "scan files for malware with ClamAV and YARA signatures",
		Long: `Scan files and directories (and zip/gzip/tar content) for malware.

Signatures: the embedded default pack, plus every --db (ClamAV .hdb .hsb .ndb
.ldb .fp .sfp .cvd .cld, YARA .yar/.yara, or directories of them).
Exit code: 0 clean, 1 something found, 2 something could not be scanned.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScan(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.dbs, "db", "d", nil, "signature file or directory (repeatable)")
	fl.BoolVar(&f.noDefault, "no-default-db", false, "do not load the embedded default pack")
	fl.BoolVar(&f.strict, "strict", false, "fail on any unsupported signature construct")
	fl.BoolVar(&f.json, "json", false, "print one OCSF-aligned JSON event per line")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "skip paths matching this glob (repeatable)")
	fl.StringVar(&f.maxFileSize, "max-filesize", "", "report and skip files larger than this (e.g. 100M)")
	fl.IntVarP(&f.jobs, "jobs", "j", 0, "parallel workers (default: number of CPUs)")
	fl.BoolVarP(&f.infectedOnly, "infected", "i", false, "only print infected files")
	fl.StringVar(&f.action, "action", "report", "what to do with a detected file: report, quarantine or delete")
	fl.StringVar(&f.quarantineDir, "quarantine-dir", quarantine.DefaultDir, "quarantine store")
	fl.BoolVar(&f.followSymlinks, "follow-symlinks", false, "follow symlinks found while walking (loops are detected)")
	fl.BoolVar(&f.showIssues, "show-unsupported", false, "list every signature that was not loaded, with file:line and reason")
	fl.BoolVar(&f.noArchive, "no-archive", false, "do not look inside zip/gzip/tar files")
	fl.BoolVar(&f.watch, "watch", false, "keep watching PATH and scan files on access (fanotify as root, else inotify)")
	return cmd
}

// parseSize accepts a byte count with an optional K, M or G suffix.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 100M)", s)
	}
	return n * mult, nil
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func runScan(ctx context.Context, stdout, stderr io.Writer, f scanFlags, paths []string) error {
	maxSize, err := parseSize(f.maxFileSize)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	switch f.action {
	case "report", "quarantine", "delete":
	default:
		return &ExitError{Code: 2, Err: fmt.Errorf("--action %q: want report, quarantine or delete", f.action)}
	}
	start := time.Now()
	eng, err := malware.Load(malware.LoadOptions{Paths: f.dbs, NoDefault: f.noDefault, Strict: f.strict})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	loadTime := time.Since(start)
	boundHeap(16 << 20)
	if pf := os.Getenv("MAMORI_MEMPROFILE"); pf != "" {
		if fh, err := os.Create(pf); err == nil {
			pprof.Lookup("heap").WriteTo(fh, 0)
			fh.Close()
		}
	}
	if f.showIssues {
		for _, is := range eng.Issues {
			fmt.Fprintln(stderr, "not loaded:", is)
		}
	}
	if f.watch {
		return runWatch(ctx, stdout, stderr, eng, f, paths)
	}
	opt := malware.Options{Jobs: f.jobs, MaxFileSize: maxSize, Exclude: f.exclude, FollowSymlinks: f.followSymlinks}
	if f.noArchive {
		opt.Limits = malware.Limits{MaxDepth: -1}
	}
	var store *quarantine.Store
	if f.action == "quarantine" {
		if store, err = quarantine.Open(f.quarantineDir); err != nil {
			return &ExitError{Code: 2, Err: err}
		}
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	var files, infected, skipped, errs atomic.Int64
	var bytes atomic.Int64
	prog := newProgress(stderr, paths, &files, &bytes)
	scanStart := time.Now()
	eng.Scan(ctx, paths, opt, func(r malware.Result) {
		action := "alerted"
		if len(r.Detections) > 0 {
			infected.Add(1)
			switch f.action {
			case "quarantine":
				if _, qerr := store.Add(r.Path, r.Detections[0].Rule); qerr != nil {
					r.Err = qerr
				} else {
					action = "quarantined"
				}
			case "delete":
				if derr := os.Remove(r.Path); derr != nil {
					r.Err = fmt.Errorf("deleting: %w", derr)
				} else {
					action = "deleted"
				}
			}
		}
		switch {
		case r.Err != nil:
			errs.Add(1)
		case r.Skipped != "":
			skipped.Add(1)
		default:
			files.Add(1)
			bytes.Add(r.Size)
		}
		prog.clear()
		if f.json {
			for _, e := range r.Events("antimalware", action) {
				if b, err := e.MarshalOCSF(); err == nil {
					out.Write(b)
					out.WriteByte('\n')
				}
			}
			return
		}
		// clamscan's line format, one line per rule (the member of an
		// archive that matched is in the --json events)
		seen := map[string]bool{}
		for _, d := range r.Detections {
			if !seen[d.Rule] {
				seen[d.Rule] = true
				fmt.Fprintf(out, "%s: %s FOUND\n", r.Path, d.Rule)
			}
		}
		if len(r.Detections) > 0 && action != "alerted" {
			fmt.Fprintf(out, "%s: %s\n", r.Path, strings.ToUpper(action[:1])+action[1:])
		}
		if r.Err != nil {
			fmt.Fprintf(out, "%s: ERROR %v\n", r.Path, r.Err)
		} else if r.Skipped != "" && !f.infectedOnly {
			fmt.Fprintf(out, "%s: Skipped (%s)\n", r.Path, r.Skipped)
		}
		for _, l := range r.Limits {
			fmt.Fprintf(out, "%s: LIMIT %s\n", r.Path, l)
		}
		if len(r.Detections) == 0 && r.Err == nil && r.Skipped == "" && !f.infectedOnly {
			fmt.Fprintf(out, "%s: OK\n", r.Path)
		}
	})
	prog.stop()
	elapsed := time.Since(scanStart)
	if f.json {
		e := event.Event{Kind: event.KindScanSummary, Severity: event.SeverityInfo, Module: "antimalware",
			Message: fmt.Sprintf("scanned %d files (%.2f MB) in %.3f s: %d infected, %d skipped, %d errors", files.Load(), float64(bytes.Load())/1e6, elapsed.Seconds(), infected.Load(), skipped.Load(), errs.Load()),
			Fields: map[string]string{"files": fmt.Sprint(files.Load()), "bytes": fmt.Sprint(bytes.Load()), "infected": fmt.Sprint(infected.Load()),
				"skipped": fmt.Sprint(skipped.Load()), "errors": fmt.Sprint(errs.Load()), "signatures": fmt.Sprint(eng.Rules()),
				"signatures_not_loaded": fmt.Sprint(len(eng.Issues)), "seconds": fmt.Sprintf("%.3f", elapsed.Seconds())}}
		e.Fill()
		if b, err := e.MarshalOCSF(); err == nil {
			out.Write(b)
			out.WriteByte('\n')
		}
	} else {
		fmt.Fprintf(out, "\n----------- SCAN SUMMARY -----------\n")
		fmt.Fprintf(out, "Known viruses: %d\n", eng.Rules())
		fmt.Fprintf(out, "Engine version: mamori %s\n", Version)
		fmt.Fprintf(out, "Scanned files: %d\n", files.Load())
		fmt.Fprintf(out, "Infected files: %d\n", infected.Load())
		fmt.Fprintf(out, "Skipped files: %d\n", skipped.Load())
		fmt.Fprintf(out, "Errors: %d\n", errs.Load())
		fmt.Fprintf(out, "Data scanned: %.2f MB\n", float64(bytes.Load())/1e6)
		fmt.Fprintf(out, "Signatures not loaded: %d\n", len(eng.Issues))
		fmt.Fprintf(out, "Load time: %.3f sec\n", loadTime.Seconds())
		fmt.Fprintf(out, "Time: %.3f sec (%.1f MB/s)\n", elapsed.Seconds(), float64(bytes.Load())/1e6/max(elapsed.Seconds(), 1e-9))
	}
	switch {
	case errs.Load() > 0:
		return &ExitError{Code: 2}
	case infected.Load() > 0:
		return &ExitError{Code: 1}
	}
	return nil
}

// progress draws a one-line progress bar on a terminal: files, bytes, rate
// and an ETA once a background walk has totalled the input.
type progress struct {
	w     io.Writer
	done  chan struct{}
	total atomic.Int64
	on    bool
}

func newProgress(w io.Writer, paths []string, files, bytes *atomic.Int64) *progress {
	p := &progress{w: w, done: make(chan struct{}), on: isTTY(w)}
	if !p.on {
		return p
	}
	p.total.Store(-1)
	go func() {
		var sum int64
		for _, root := range paths {
			filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if fi, err := d.Info(); err == nil {
						sum += fi.Size()
					}
				}
				return nil
			})
		}
		p.total.Store(sum)
	}()
	start := time.Now()
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				el := time.Since(start).Seconds()
				b := bytes.Load()
				rate := float64(b) / 1e6 / max(el, 1e-9)
				eta := "?"
				if tot := p.total.Load(); tot > 0 && rate > 0 {
					eta = fmt.Sprintf("%.0fs", float64(tot-b)/1e6/rate)
				}
				fmt.Fprintf(w, "\r\033[K%d files, %.1f MB, %.1f MB/s, ETA %s", files.Load(), float64(b)/1e6, rate, eta)
			}
		}
	}()
	return p
}

func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) stop() {
	close(p.done)
	p.clear()
}

// boundHeap caps the heap's growth over the loaded signatures while
// scanning. With the default GOGC the scan's small per-file garbage may
// grow the heap by the size of the signature set again (another 40 MB at
// 100k signatures) before anything is collected, and that is what peak RSS
// measures; a soft limit of the memory in use now plus slack (16 MB) costs a few
// cheap collections per GB scanned instead. A GOMEMLIMIT set by the user
// wins.
func boundHeap(slack int64) {
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return
	}
	debug.SetMemoryLimit(int64(s[0].Value.Uint64()-s[1].Value.Uint64()) + slack)
}
