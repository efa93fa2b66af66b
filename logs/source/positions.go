package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Pos is the read position in one file: the offset just after the last
// line handed on, and the file's identity so that a rotation while mamori
// was stopped is noticed.
type Pos struct {
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
}

// Positions persists read positions (and the journald cursor) in one JSON
// file, written atomically (temporary file, fsync, rename).
type Positions struct {
	path  string
	mu    sync.Mutex
	Files map[string]Pos `json:"files"`
	// Cursor is the journald cursor of the last entry handed on.
	Cursor string `json:"journal_cursor,omitempty"`
	dirty  bool
}

// LoadPositions reads the position file; a missing file is an empty set.
// path "" keeps positions in memory only.
func LoadPositions(path string) (*Positions, error) {
	p := &Positions{path: path, Files: map[string]Pos{}}
	if path == "" {
		return p, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading positions: %w", err)
	}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("loading positions %s: %w", path, err)
	}
	if p.Files == nil {
		p.Files = map[string]Pos{}
	}
	return p, nil
}

// Get returns the saved position of a file.
func (p *Positions) Get(file string) (Pos, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.Files[file]
	return v, ok
}

// Set records a position (saved by the next Save).
func (p *Positions) Set(file string, v Pos) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Files[file] != v {
		p.Files[file] = v
		p.dirty = true
	}
}

// Delete forgets a file.
func (p *Positions) Delete(file string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.Files[file]; ok {
		delete(p.Files, file)
		p.dirty = true
	}
}

// SetCursor records the journald cursor.
func (p *Positions) SetCursor(c string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Cursor != c {
		p.Cursor = c
		p.dirty = true
	}
}

// GetCursor returns the journald cursor.
func (p *Positions) GetCursor() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Cursor
}

// Save writes the positions if they changed.
func (p *Positions) Save() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.dirty || p.path == "" {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("saving positions: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(p.path), 0o700); err != nil {
		return fmt.Errorf("saving positions: %w", err)
	}
	tmp := p.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("saving positions: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("saving positions: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("saving positions: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving positions: %w", err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return fmt.Errorf("saving positions: %w", err)
	}
	p.dirty = false
	return nil
}
