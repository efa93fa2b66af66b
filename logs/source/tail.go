package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// TailConfig configures a Tailer.
type TailConfig struct {
	// Paths are files or glob patterns; files that appear later are
	// picked up at the next poll.
	Paths []string
	// Poll is how often files are checked (default 250 ms). Polling, not
	// inotify, because it also works on every filesystem and keeps the
	// rotation logic in one place.
	Poll time.Duration
	// FromStart reads files that have no saved position from their
	// beginning; otherwise only files that appear while running are read
	// from the start and existing ones from their end (tail -F -n 0).
	FromStart bool
	MaxLine   int
}

// Tailer follows files like tail -F and remembers where it is.
type Tailer struct {
	cfg   TailConfig
	pos   *Positions
	files map[string]*tailed
	// hist remembers, per path, the generations (inodes) already read to
	// their end, so that after a rotation the rotated siblings we never
	// saw can be read without reading a known one twice.
	hist  map[string][]gen
	first bool
	// Truncated counts over-long lines.
	Truncated int64
}

type tailed struct {
	path string
	f    *os.File
	dev  uint64
	ino  uint64
	fp   string // first bytes: inode numbers are reused after deletion
	lr   *LineReader
}

// gen identifies one generation of a file: inode plus first bytes.
type gen struct {
	ino uint64
	fp  string
}

const fpLen = 64

// fingerprint reads up to fpLen bytes at offset 0.
func fingerprint(f *os.File) string {
	var b [fpLen]byte
	n, _ := f.ReadAt(b[:], 0)
	return string(b[:n])
}

// sameGen reports whether a file is the generation g we read before: same
// inode (numbers are reused once a file is deleted) and the same first
// bytes. A generation remembered empty never matches: reading an empty
// file again costs nothing, skipping a reused inode would lose lines.
func sameGen(g gen, ino uint64, fp string) bool {
	if g.ino != ino || g.fp == "" || fp == "" {
		return false
	}
	n := min(len(g.fp), len(fp))
	return g.fp[:n] == fp[:n]
}

// truncatedAndRewritten notices a copytruncate whose new content already
// outgrew our offset: the first bytes changed under the same inode.
func (tf *tailed) truncatedAndRewritten() bool {
	if tf.fp == "" {
		return false
	}
	now := fingerprint(tf.f)
	n := min(len(tf.fp), len(now))
	return now[:n] != tf.fp[:n]
}

// NewTailer returns a Tailer that stores positions in pos.
func NewTailer(cfg TailConfig, pos *Positions) *Tailer {
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	return &Tailer{cfg: cfg, pos: pos, files: map[string]*tailed{}, hist: map[string][]gen{}, first: true}
}

// Run follows the files until ctx is done, calling fn for every complete
// line. Positions are saved after every poll round and on return, so a
// restart resumes after the last line handed to fn.
func (t *Tailer) Run(ctx context.Context, fn func(line, path string)) error {
	defer func() {
		for _, tf := range t.files {
			t.pos.Set(tf.path, Pos{Dev: tf.dev, Inode: tf.ino, Offset: tf.lr.Offset})
			tf.f.Close()
		}
		t.pos.Save()
	}()
	tick := time.NewTicker(t.cfg.Poll)
	defer tick.Stop()
	for {
		if err := t.Poll(fn); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Poll does one round: find files, notice rotations, read new lines.
func (t *Tailer) Poll(fn func(line, path string)) error {
	seen := map[string]bool{}
	for _, g := range t.cfg.Paths {
		matches, err := filepath.Glob(g)
		if err != nil {
			return fmt.Errorf("tailing: bad pattern %q: %w", g, err)
		}
		for _, m := range matches {
			seen[m] = true
		}
	}
	paths := make([]string, 0, len(seen))
	for p := range seen {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		t.follow(p, fn)
	}
	// Files that disappeared: read what is left through the open
	// descriptor, then let go.
	for p, tf := range t.files {
		if !seen[p] {
			if _, err := os.Stat(p); err == nil {
				continue
			}
			t.drain(tf, fn)
			t.remember(p, tf)
			tf.f.Close()
			delete(t.files, p)
			t.pos.Delete(p)
		}
	}
	t.first = false
	return t.pos.Save()
}

func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

func (t *Tailer) follow(p string, fn func(line, path string)) {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	dev, ino := fileID(fi)
	tf := t.files[p]
	if tf == nil {
		var off int64
		saved, ok := t.pos.Get(p)
		switch {
		case ok && saved.Inode == ino && saved.Dev == dev && saved.Offset <= fi.Size():
			off = saved.Offset
		case ok:
			// Rotated while we were stopped: finish the old generation
			// first if it is still next to the new file.
			t.catchUpRotated(p, saved, ino, fn)
		case t.first && !t.cfg.FromStart:
			off = fi.Size()
		}
		// Open before looking at rotated siblings: if the file rotates
		// meanwhile we still hold it, and it is the one sibling to skip.
		tf, err = t.open(p, off)
		if err != nil {
			return
		}
		t.files[p] = tf
		if _, rotated := t.hist[p]; rotated {
			// The path vanished during a rotation and is back.
			t.readSiblings(p, tf, fn)
		}
	} else if ino != tf.ino || dev != tf.dev {
		// Rotation by rename: drain the old file through its descriptor,
		// then start the new file and read any generation rotated away
		// between two polls. (While we hold the old file open its inode
		// cannot be reused, so the inode alone tells the files apart.)
		t.drain(tf, fn)
		t.remember(p, tf)
		tf.f.Close()
		ntf, err := t.open(p, 0)
		if err != nil {
			delete(t.files, p)
			return
		}
		tf = ntf
		t.files[p] = tf
		t.readSiblings(p, tf, fn)
	} else if fi.Size() < tf.lr.Offset || tf.truncatedAndRewritten() {
		// copytruncate: the tail we had not read yet is in the copy.
		t.readCopy(p, tf.lr.Offset, fn)
		tf.f.Seek(0, io.SeekStart)
		tf.lr.Reset(tf.f, 0)
		tf.fp = fingerprint(tf.f)
	}
	t.read(tf, fn)
	t.pos.Set(p, Pos{Dev: tf.dev, Inode: tf.ino, Offset: tf.lr.Offset})
}

func (t *Tailer) open(p string, off int64) (*tailed, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if off > fi.Size() {
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	dev, ino := fileID(fi)
	return &tailed{path: p, f: f, dev: dev, ino: ino, fp: fingerprint(f), lr: NewLineReader(f, t.cfg.MaxLine, off)}, nil
}

func (t *Tailer) read(tf *tailed, fn func(line, path string)) {
	for {
		line, err := tf.lr.Next()
		if err != nil {
			t.Truncated = tf.lr.Truncated
			return
		}
		fn(line, tf.path)
	}
}

// drain reads an old generation to its end, including a last line that
// will never get its newline.
func (t *Tailer) drain(tf *tailed, fn func(line, path string)) {
	t.read(tf, fn)
	if rest, ok := tf.lr.Rest(); ok {
		fn(rest, tf.path)
	}
}

// rotatedNames are where logrotate and rsyslog put the previous
// generation.
func rotatedNames(p string) []string {
	return []string{p + ".1", p + ".0", p + "-old"}
}

// currentFP returns the fingerprint, taking it once the file has bytes.
func (tf *tailed) currentFP() string {
	if len(tf.fp) < fpLen {
		if fp := fingerprint(tf.f); len(fp) > len(tf.fp) && fp[:len(tf.fp)] == tf.fp {
			tf.fp = fp
		}
	}
	return tf.fp
}

func (t *Tailer) remember(p string, tf *tailed) {
	h := append(t.hist[p], gen{tf.ino, tf.currentFP()})
	if len(h) > 16 {
		h = h[len(h)-16:]
	}
	t.hist[p] = h
}

// readSiblings reads, oldest first, the rotated generations of p that
// were created and rotated away between two polls (never opened by us).
func (t *Tailer) readSiblings(p string, cur *tailed, fn func(line, path string)) {
	// Oldest first; logrotate numbers generations .1 (newest) upwards.
	var names []string
	for k := 9; k >= 0; k-- {
		names = append(names, fmt.Sprintf("%s.%d", p, k))
	}
	names = append(names, p+"-old")
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			continue
		}
		_, ino := fileID(fi)
		fp := fingerprint(f)
		f.Close()
		// The file we hold open is skipped by inode alone: it cannot have
		// been replaced while open.
		known := ino == cur.ino
		for _, h := range t.hist[p] {
			known = known || sameGen(h, ino, fp)
		}
		if known {
			continue
		}
		t.readFileFrom(n, p, 0, fn)
		t.hist[p] = append(t.hist[p], gen{ino, fp})
	}
}

// catchUpRotated finishes the generation we were reading when we stopped.
func (t *Tailer) catchUpRotated(p string, saved Pos, cur uint64, fn func(line, path string)) {
	for _, n := range rotatedNames(p) {
		fi, err := os.Stat(n)
		if err != nil {
			continue
		}
		if dev, ino := fileID(fi); ino == saved.Inode && dev == saved.Dev && fi.Size() >= saved.Offset {
			t.readFileFrom(n, p, saved.Offset, fn)
			return
		}
	}
}

// readCopy reads, after a copytruncate, the part of the copy beyond what
// we had read.
func (t *Tailer) readCopy(p string, off int64, fn func(line, path string)) {
	for _, n := range rotatedNames(p) {
		fi, err := os.Stat(n)
		if err != nil || fi.Size() < off {
			continue
		}
		t.readFileFrom(n, p, off, fn)
		return
	}
}

func (t *Tailer) readFileFrom(name, display string, off int64, fn func(line, path string)) {
	f, err := os.Open(name)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return
	}
	lr := NewLineReader(f, t.cfg.MaxLine, off)
	for {
		line, err := lr.Next()
		if err != nil {
			if rest, ok := lr.Rest(); ok {
				fn(rest, display)
			}
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
		fn(line, display)
	}
}
