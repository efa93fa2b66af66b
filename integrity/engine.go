package integrity

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
	"github.com/mamori-sec/mamori/integrity/walk"
)

// Config is one integrity job: a policy, its baseline and how to walk.
type Config struct {
	Policy   *policy.Policy
	Baseline string // path of the baseline file
	Key      []byte // MAC key of the baseline
	Root     string // filesystem root prefix, "" or "/" for the real one
	Workers  int
	// TrustMetadata skips rehashing a file whose size, mtime, ctime and
	// inode equal the baseline's (faster, weaker: a tool that restores
	// mtime and ctime cannot, but a raw-device writer could).
	TrustMetadata bool
	// Only restricts check and update to these logical paths.
	Only     []string
	Throttle func(ctx context.Context) error
	Stats    *walk.Stats // optional, for progress display
}

// Report is the outcome of a check (or of the walk an update accepted).
type Report struct {
	Findings []Finding // sorted by path
	Entries  int       // objects recorded in this run
	Started  time.Time
	Elapsed  time.Duration
	// Saved is how long writing and syncing the baseline took (init,
	// update): on a busy disk, fsync can dominate.
	Saved time.Duration
	// PolicyChanged: the baseline was built under another policy, so
	// additions and removals may come from the policy, not the files.
	PolicyChanged bool
}

// Counts returns how many findings of each kind the report holds.
func (r *Report) Counts() map[string]int {
	m := map[string]int{}
	for _, f := range r.Findings {
		m[f.What]++
	}
	return m
}

// Changes reports whether anything was added, removed or changed.
func (r *Report) Changes() bool {
	for _, f := range r.Findings {
		if f.What != Error {
			return true
		}
	}
	return false
}

func (c *Config) walkOpts() walk.Options {
	return walk.Options{Root: c.Root, Workers: c.Workers, Only: c.Only, Throttle: c.Throttle}
}

// Init records the filesystem and saves a new baseline. Per-item problems
// are returned as Error findings; the baseline keeps what could be read.
func Init(ctx context.Context, c Config) (*Report, error) {
	rep := &Report{Started: time.Now()}
	var chunks baseline.Chunks
	opt := c.walkOpts()
	opt.Only = nil
	err := walk.Walk(ctx, c.Policy, opt, c.Stats, func(it *walk.Item) {
		if it.Err != nil {
			rep.Findings = append(rep.Findings, Finding{What: Error, Path: it.Entry.Path, Rule: it.Rule, Err: it.Err.Error()})
		}
		if it.Entry.Attrs != 0 {
			chunks.Add(&it.Entry)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("walking: %w", err)
	}
	entries := chunks.Sorted()
	rep.Entries = len(entries)
	b := &baseline.Baseline{Header: c.header(), Entries: entries}
	t0 := time.Now()
	if err := baseline.Save(c.Baseline, c.Key, b); err != nil {
		return nil, err
	}
	rep.Saved = time.Since(t0)
	sortFindings(rep.Findings)
	rep.Elapsed = time.Since(rep.Started)
	return rep, nil
}

func (c *Config) header() baseline.Header {
	return baseline.Header{Created: time.Now().UnixNano(), PolicyName: c.Policy.Name, PolicyDigest: c.Policy.Digest()}
}

// Check compares the filesystem with the baseline.
func Check(ctx context.Context, c Config) (*Report, error) {
	b, err := baseline.Load(c.Baseline, c.Key)
	if err != nil {
		return nil, err
	}
	rep, _, err := check(ctx, c, b, false)
	return rep, err
}

// check walks and diffs against b; with keep it also returns the entries
// recorded, for update.
func check(ctx context.Context, c Config, b *baseline.Baseline, keep bool) (*Report, []baseline.Entry, error) {
	rep := &Report{Started: time.Now(), PolicyChanged: b.PolicyDigest != c.Policy.Digest()}
	seen := make([]bool, len(b.Entries))
	var cur []baseline.Entry
	var unreadable []string
	opt := c.walkOpts()
	if c.TrustMetadata {
		opt.Reuse = func(e *baseline.Entry) bool { return reuse(b, e) }
	}
	err := walk.Walk(ctx, c.Policy, opt, c.Stats, func(it *walk.Item) {
		e := &it.Entry
		if it.Err != nil {
			rep.Findings = append(rep.Findings, Finding{What: Error, Path: e.Path, Rule: it.Rule, Err: it.Err.Error()})
			if e.Attrs == 0 {
				unreadable = append(unreadable, e.Path)
			}
		}
		i, ok := b.Find(e.Path)
		if ok {
			seen[i] = true
		}
		if e.Attrs == 0 {
			return
		}
		rep.Entries++
		if keep {
			cur = append(cur, *e)
		}
		if !ok {
			if !it.Rule.ExpectNew {
				ne := *e
				rep.Findings = append(rep.Findings, Finding{What: Added, Path: e.Path, Rule: it.Rule, New: &ne})
			}
			return
		}
		old := &b.Entries[i]
		if ch := Diff(old, e, it.Rule); len(ch) > 0 {
			ne := *e
			rep.Findings = append(rep.Findings, Finding{What: Changed, Path: e.Path, Rule: it.Rule, Old: old, New: &ne, Changes: ch})
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walking: %w", err)
	}
	for i := range b.Entries {
		if seen[i] {
			continue
		}
		old := &b.Entries[i]
		if !inScope(old.Path, c.Only) || underAny(old.Path, unreadable) {
			continue
		}
		r := c.Policy.RuleFor(old.Path)
		if r == nil || r.ExpectGone {
			continue
		}
		rep.Findings = append(rep.Findings, Finding{What: Removed, Path: old.Path, Rule: r, Old: old})
	}
	sortFindings(rep.Findings)
	rep.Elapsed = time.Since(rep.Started)
	return rep, cur, nil
}

func reuse(b *baseline.Baseline, e *baseline.Entry) bool {
	i, ok := b.Find(e.Path)
	if !ok {
		return false
	}
	o := &b.Entries[i]
	want := e.Attrs & policy.AttrHashes
	if o.Type != e.Type || o.Size != e.Size || o.MTime != e.MTime || o.CTime != e.CTime || o.Inode != e.Inode || !o.Attrs.Has(want) || o.Flags&baseline.FlagError != 0 {
		return false
	}
	e.SHA256, e.XXH3 = o.SHA256, o.XXH3
	if want.Has(policy.AttrBLAKE3) {
		e.Mut().BLAKE3 = o.Ext().BLAKE3
	}
	return true
}

// Update accepts the current state into the baseline: everything, or only
// the objects under c.Only. It returns the findings it accepted, for the
// audit record.
func Update(ctx context.Context, c Config) (*Report, error) {
	b, err := baseline.Load(c.Baseline, c.Key)
	if err != nil {
		return nil, err
	}
	rep, cur, err := check(ctx, c, b, true)
	if err != nil {
		return nil, err
	}
	merged := cur
	if len(c.Only) > 0 {
		for _, e := range b.Entries {
			if !inScope(e.Path, c.Only) {
				merged = append(merged, e)
			}
		}
	}
	merged = baseline.Sort(merged)
	nb := &baseline.Baseline{Header: c.header(), Entries: merged}
	t0 := time.Now()
	if err := baseline.Save(c.Baseline, c.Key, nb); err != nil {
		return nil, err
	}
	rep.Saved = time.Since(t0)
	rep.Elapsed = time.Since(rep.Started)
	return rep, nil
}

func inScope(p string, only []string) bool {
	if len(only) == 0 {
		return true
	}
	return underAny(p, only)
}

func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if d == "/" || p == d || strings.HasPrefix(p, d) && p[len(d)] == '/' {
			return true
		}
	}
	return false
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Path != fs[j].Path {
			return fs[i].Path < fs[j].Path
		}
		return fs[i].What < fs[j].What
	})
}
