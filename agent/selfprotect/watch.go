package selfprotect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"syscall"
	"time"
)

// Change is one difference found by the watcher.
type Change struct {
	Path     string
	What     string // "content", "mode", "owner", "removed", "created"
	Old, New string
}

type fileState struct {
	exists     bool
	size       int64
	mtime      time.Time
	ino        uint64
	mode       os.FileMode
	uid, gid   uint32
	sha256     string
	readFailed bool
}

// Watcher polls a fixed set of files. Polling, not inotify: the binary is
// usually replaced by rename (a package upgrade or an attacker), which a
// watch on the old inode would miss, and a few stat calls a minute cost
// nothing. Content is hashed only when size, mtime or inode moved.
type Watcher struct {
	files []string
	last  map[string]fileState
}

// NewWatcher records the current state of files as the baseline.
func NewWatcher(files []string) *Watcher {
	w := &Watcher{last: map[string]fileState{}}
	seen := map[string]bool{}
	for _, f := range files {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		w.files = append(w.files, f)
		w.last[f] = stateOf(f, fileState{})
	}
	sort.Strings(w.files)
	return w
}

// Check compares each file with the previous check and returns the changes.
func (w *Watcher) Check() []Change {
	var out []Change
	for _, f := range w.files {
		old := w.last[f]
		cur := stateOf(f, old)
		w.last[f] = cur
		switch {
		case old.exists && !cur.exists:
			out = append(out, Change{Path: f, What: "removed"})
			continue
		case !old.exists && cur.exists:
			out = append(out, Change{Path: f, What: "created", New: cur.sha256})
			continue
		case !cur.exists:
			continue
		}
		if old.sha256 != cur.sha256 {
			out = append(out, Change{Path: f, What: "content", Old: old.sha256, New: cur.sha256})
		}
		if old.mode != cur.mode {
			out = append(out, Change{Path: f, What: "mode", Old: old.mode.String(), New: cur.mode.String()})
		}
		if old.uid != cur.uid || old.gid != cur.gid {
			out = append(out, Change{Path: f, What: "owner", Old: fmt.Sprintf("%d:%d", old.uid, old.gid), New: fmt.Sprintf("%d:%d", cur.uid, cur.gid)})
		}
	}
	return out
}

// Run checks every interval and calls report with each non-empty result.
func (w *Watcher) Run(ctx context.Context, interval time.Duration, report func([]Change)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ch := w.Check(); len(ch) > 0 {
				report(ch)
			}
		}
	}
}

func stateOf(path string, prev fileState) fileState {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{}
	}
	s := fileState{exists: true, size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino, s.uid, s.gid = st.Ino, st.Uid, st.Gid
	}
	if prev.exists && !prev.readFailed && prev.size == s.size && prev.mtime.Equal(s.mtime) && prev.ino == s.ino {
		s.sha256 = prev.sha256
		return s
	}
	s.sha256, s.readFailed = hashFile(path)
	return s
}

func hashFile(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", true
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", true
	}
	return hex.EncodeToString(h.Sum(nil)), false
}
