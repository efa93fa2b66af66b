package walk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
)

// Options tune a walk. The zero value walks the real root with one worker
// per core plus one.
type Options struct {
	// Root is prefixed to every policy path ("/srv/fixture" makes the rule
	// /etc read /srv/fixture/etc); entries keep the logical path.
	Root    string
	Workers int
	// Only, when set, restricts the walk to these logical paths and what
	// lies under them.
	Only []string
	// Reuse is asked, for a regular file about to be hashed, whether the
	// caller already knows its digests (--trust-metadata: same size, mtime,
	// ctime and inode as in the baseline). If it fills them in e and
	// returns true the file is not read.
	Reuse func(e *baseline.Entry) bool
	// Throttle, when set, is called between files (agent CPU budget).
	Throttle func(ctx context.Context) error
	// Retries of a file that changes while it is hashed; default 2.
	Retries int
}

// Item is one recorded object. Err is a per-item problem (permission
// denied, vanished, unstable): the run goes on and the item's entry holds
// what could be read, with FlagError set.
type Item struct {
	Entry baseline.Entry
	Rule  *policy.Rule
	Err   error
}

// Stats are the running totals of a walk, safe to read while it runs.
type Stats struct {
	Files, Dirs, Bytes, Hashed, Errors atomic.Int64
}

type task struct {
	path    string
	rule    *policy.Rule
	depth   int
	rootDev uint64
	record  bool
	descend bool
	isRoot  bool
}

type walker struct {
	ctx   context.Context
	pol   *policy.Policy
	opt   Options
	emit  func(*Item)
	stats *Stats

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []task
	pending int
	emitMu  sync.Mutex
}

// Walk records every object the policy selects and calls emit for each, one
// call at a time. It returns when the walk is complete or ctx is done.
func Walk(ctx context.Context, pol *policy.Policy, opt Options, stats *Stats, emit func(*Item)) error {
	if stats == nil {
		stats = &Stats{}
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0) + 1
	}
	if opt.Retries == 0 {
		opt.Retries = 2
	}
	if opt.Root == "/" {
		opt.Root = ""
	}
	w := &walker{ctx: ctx, pol: pol, opt: opt, emit: emit, stats: stats}
	w.cond = sync.NewCond(&w.mu)
	for _, r := range pol.Roots() {
		if !w.inScope(r.Path) && !w.scopeBelow(r.Path) {
			continue
		}
		w.push(task{path: r.Path, rule: r, isRoot: true})
	}
	var wg sync.WaitGroup
	for i := 0; i < opt.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.work()
		}()
	}
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	wg.Wait()
	return ctx.Err()
}

func (w *walker) push(t task) {
	w.mu.Lock()
	w.queue = append(w.queue, t)
	w.pending++
	w.mu.Unlock()
	w.cond.Signal()
}

func (w *walker) work() {
	buf := make([]byte, 256<<10)
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && w.pending > 0 && w.ctx.Err() == nil {
			w.cond.Wait()
		}
		if w.pending == 0 || w.ctx.Err() != nil {
			w.mu.Unlock()
			w.cond.Broadcast()
			return
		}
		// LIFO: depth first keeps the queue short and reads local.
		t := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		w.mu.Unlock()

		w.visit(t, buf)

		w.mu.Lock()
		w.pending--
		done := w.pending == 0
		w.mu.Unlock()
		if done {
			w.cond.Broadcast()
		}
	}
}

// inScope: p is one of Only or below one.
func (w *walker) inScope(p string) bool {
	if len(w.opt.Only) == 0 {
		return true
	}
	for _, o := range w.opt.Only {
		if isUnder(p, o) {
			return true
		}
	}
	return false
}

// scopeBelow: some Only path lies below p, so p must be descended.
func (w *walker) scopeBelow(p string) bool {
	for _, o := range w.opt.Only {
		if isUnder(o, p) {
			return true
		}
	}
	return false
}

func isUnder(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || len(p) > len(dir) && p[len(dir)] == '/' && p[:len(dir)] == dir
}

func (w *walker) visit(t task, buf []byte) {
	full := w.opt.Root + t.path
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		if err == unix.ENOENT {
			// A root that does not exist has nothing to record; a child
			// that vanished after its directory was listed is gone, and
			// the diff reports it removed.
			return
		}
		w.fail(t, fmt.Errorf("stating: %w", err))
		return
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if t.isRoot {
		t.rootDev = st.Dev
		t.record, t.descend = t.rule.Match(t.path, 0, isDir)
	}
	if t.record && w.inScope(t.path) {
		w.record(t, full, &st, buf)
	}
	if !isDir || !t.descend {
		return
	}
	if st.Dev != t.rootDev && !t.rule.CrossMounts {
		return // a mount point the rule does not cross
	}
	w.stats.Dirs.Add(1)
	f, err := os.Open(full)
	if err != nil {
		w.fail(t, fmt.Errorf("listing directory: %w", err))
		return
	}
	des, err := f.ReadDir(-1)
	f.Close()
	if err != nil && len(des) == 0 {
		w.fail(t, fmt.Errorf("listing directory: %w", err))
		return
	}
	base := t.path
	if base == "/" {
		base = ""
	}
	for _, de := range des {
		child := base + "/" + de.Name()
		if r := w.pol.RuleAt(child); r != nil && r != t.rule {
			continue // a more specific rule walks it
		}
		if !w.inScope(child) && !w.scopeBelow(child) {
			continue
		}
		rec, desc := t.rule.Match(child, t.depth+1, de.IsDir())
		if !rec && !desc {
			continue
		}
		w.push(task{path: child, rule: t.rule, depth: t.depth + 1, rootDev: t.rootDev, record: rec, descend: desc})
	}
}

func (w *walker) fail(t task, err error) {
	w.stats.Errors.Add(1)
	it := &Item{Entry: baseline.Entry{Path: t.path, Flags: baseline.FlagError, X: &baseline.Extra{Err: err.Error()}}, Rule: t.rule, Err: err}
	w.emitItem(it)
}

func (w *walker) emitItem(it *Item) {
	w.emitMu.Lock()
	w.emit(it)
	w.emitMu.Unlock()
}

func (w *walker) record(t task, full string, st *unix.Stat_t, buf []byte) {
	if w.opt.Throttle != nil {
		if err := w.opt.Throttle(w.ctx); err != nil {
			return
		}
	}
	it := &Item{Rule: t.rule}
	e := &it.Entry
	e.Path = t.path
	fillStat(e, st, t.rule.Attrs)
	var errs []error
	if e.Attrs.Has(policy.AttrTarget) {
		if tgt, err := readlink(full); err != nil {
			e.Attrs &^= policy.AttrTarget
			errs = append(errs, fmt.Errorf("reading link: %w", err))
		} else {
			e.Mut().Target = tgt
		}
	}
	if e.Attrs.Any(policy.AttrExtended) {
		if err := readXattrs(full, e.Attrs, e); err != nil {
			e.Attrs &^= policy.AttrExtended
			errs = append(errs, err)
		}
	}
	if e.Type == baseline.TypeFile {
		w.stats.Files.Add(1)
		w.stats.Bytes.Add(st.Size)
	}
	if e.Attrs.Any(policy.AttrHashes) && !(w.opt.Reuse != nil && !t.rule.AlwaysRehash && w.opt.Reuse(e)) {
		err := w.hash(full, st, e, buf)
		if err != nil {
			e.Attrs &^= policy.AttrHashes
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		it.Err = errors.Join(errs...)
		e.Flags |= baseline.FlagError
		e.Mut().Err = it.Err.Error()
		w.stats.Errors.Add(1)
	}
	w.emitItem(it)
}

// hash digests the file, retrying when it changes underneath; the final
// metadata recorded is the one matching the digests.
func (w *walker) hash(full string, st *unix.Stat_t, e *baseline.Entry, buf []byte) error {
	var err error
	for try := 0; try <= w.opt.Retries; try++ {
		if try > 0 {
			if serr := unix.Lstat(full, st); serr != nil {
				if serr == unix.ENOENT {
					return ErrVanished
				}
				return fmt.Errorf("stating: %w", serr)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				return fmt.Errorf("%w: replaced by another kind of file", ErrUnstable)
			}
			fillStat(e, st, e.Attrs|policy.AttrHashes)
		}
		_, err = hashFile(full, st, e.Attrs, e, buf)
		if err == nil {
			w.stats.Hashed.Add(1)
			return nil
		}
		if !errors.Is(err, ErrUnstable) {
			return err
		}
	}
	return err
}

func readlink(full string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlink(full, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, len(buf)*4)
	}
}

// fillStat copies the stat fields into e and sets e.Attrs to the wanted
// attributes that apply to the object's type.
func fillStat(e *baseline.Entry, st *unix.Stat_t, want policy.Attr) {
	e.Type = typeOf(st.Mode)
	e.Mode = st.Mode & 0o7777
	e.UID, e.GID = st.Uid, st.Gid
	e.Size = st.Size
	e.MTime = st.Mtim.Nano()
	e.CTime = st.Ctim.Nano()
	e.Inode = st.Ino
	e.Nlink = uint64(st.Nlink)
	a := want | policy.AttrType
	if e.Type != baseline.TypeFile {
		a &^= policy.AttrHashes
	}
	if e.Type != baseline.TypeSymlink {
		a &^= policy.AttrTarget
	}
	if e.Type == baseline.TypeDir {
		// A directory's size is the filesystem's allocation for its
		// entries; a change of entries shows in mtime already.
		a &^= policy.AttrSize
	}
	e.Attrs = a
}

func typeOf(m uint32) byte {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return baseline.TypeFile
	case unix.S_IFDIR:
		return baseline.TypeDir
	case unix.S_IFLNK:
		return baseline.TypeSymlink
	case unix.S_IFCHR:
		return baseline.TypeChar
	case unix.S_IFBLK:
		return baseline.TypeBlock
	case unix.S_IFIFO:
		return baseline.TypeFIFO
	case unix.S_IFSOCK:
		return baseline.TypeSocket
	}
	return '?'
}
