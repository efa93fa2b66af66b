package baseline

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// ErrTampered marks a baseline whose MAC does not match: it was modified,
// truncated, or sealed with another key. Such a baseline is never used.
var ErrTampered = errors.New("baseline MAC mismatch: the file was modified, truncated or sealed with another key; refusing to use it")

// Baseline is a decoded baseline: entries sorted by path.
type Baseline struct {
	Header
	Entries []Entry
}

// Find returns the index of the entry for path.
func (b *Baseline) Find(path string) (int, bool) {
	i := sort.Search(len(b.Entries), func(i int) bool { return b.Entries[i].Path >= path })
	return i, i < len(b.Entries) && b.Entries[i].Path == path
}

// Sort orders entries by path, as the file format and Find require, and
// drops duplicates (keeping the last). It sorts an index and moves each
// entry once: sorting the 176-byte entries themselves moved them
// O(n log n) times, and a walk hands them over in no useful order.
func Sort(entries []Entry) []Entry {
	idx := make([]int32, len(entries))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		if c := strings.Compare(entries[a].Path, entries[b].Path); c != 0 {
			return c
		}
		return int(a - b) // equal paths: the later one last
	})
	out := make([]Entry, 0, len(entries))
	for _, i := range idx {
		if n := len(out); n > 0 && out[n-1].Path == entries[i].Path {
			out[n-1] = entries[i]
			continue
		}
		out = append(out, entries[i])
	}
	return out
}

// Chunks collects entries as a walk emits them without ever copying the
// ones already collected: a growing slice re-copied megabytes while every
// walker waited on the emit lock.
type Chunks struct {
	full [][]Entry
	cur  []Entry
	n    int
}

const chunkLen = 1024

// Add appends a copy of e.
func (c *Chunks) Add(e *Entry) {
	if len(c.cur) == cap(c.cur) {
		if c.cur != nil {
			c.full = append(c.full, c.cur)
		}
		c.cur = make([]Entry, 0, chunkLen)
	}
	c.cur = append(c.cur, *e)
	c.n++
}

// Sorted returns every entry added, sorted as Sort does, in one slice.
func (c *Chunks) Sorted() []Entry {
	type ref struct{ chunk, i int32 }
	all := append(c.full, c.cur)
	refs := make([]ref, 0, c.n)
	for ci, ch := range all {
		for i := range ch {
			refs = append(refs, ref{int32(ci), int32(i)})
		}
	}
	at := func(r ref) *Entry { return &all[r.chunk][r.i] }
	slices.SortFunc(refs, func(a, b ref) int {
		if c := strings.Compare(at(a).Path, at(b).Path); c != 0 {
			return c
		}
		if a.chunk != b.chunk {
			return int(a.chunk - b.chunk)
		}
		return int(a.i - b.i)
	})
	out := make([]Entry, 0, c.n)
	for _, r := range refs {
		e := at(r)
		if n := len(out); n > 0 && out[n-1].Path == e.Path {
			out[n-1] = *e
			continue
		}
		out = append(out, *e)
	}
	return out
}

// Load reads, authenticates and decodes the baseline at path.
func Load(path string, key []byte) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading baseline: %w", err)
	}
	b, err := Decode(data, key)
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	return b, nil
}

// Decode authenticates and decodes a baseline held in memory.
func Decode(data, key []byte) (*Baseline, error) {
	if len(data) < len(magic)+macSize {
		return nil, fmt.Errorf("%w (file is %d bytes, truncated)", ErrTampered, len(data))
	}
	body, sum := data[:len(data)-macSize], data[len(data)-macSize:]
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), sum) {
		return nil, ErrTampered
	}
	h, entries, err := decodeBody(body)
	if err != nil {
		return nil, err
	}
	return &Baseline{Header: h, Entries: entries}, nil
}

// Save writes b to path atomically: a temporary file in the same directory
// is written, sealed, fsynced and renamed over path, then the directory is
// fsynced. On any error (a full disk) the temporary file is removed and the
// previous baseline is left as it was. Entries must be sorted (see Sort).
func Save(path string, key []byte, b *Baseline) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating baseline directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("creating baseline: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	m := hmac.New(sha256.New, key)
	if err := encode(io.MultiWriter(f, m), b.Header, b.Entries); err != nil {
		return fmt.Errorf("writing baseline: %w", err)
	}
	if _, err := f.Write(m.Sum(nil)); err != nil {
		return fmt.Errorf("writing baseline: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("writing baseline: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing baseline: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing baseline: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replacing baseline: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
