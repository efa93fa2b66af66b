package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/logs/sigma"
	"github.com/mamori-sec/mamori/logs/source"
)

// Sources says what to read live.
type Sources struct {
	// Files are paths or globs followed with tail -F semantics.
	Files []string `json:"files,omitempty"`
	// Journal follows the systemd journal (journalctl); JournalArgs are
	// extra journalctl arguments such as ["-u", "ssh"].
	Journal     bool     `json:"journal,omitempty"`
	JournalArgs []string `json:"journal_args,omitempty"`
	// FromStart reads files without a saved position from the beginning.
	FromStart bool `json:"from_start,omitempty"`
	// PollMillis is the file poll interval (default 250).
	PollMillis int `json:"poll_ms,omitempty"`
	MaxLine    int `json:"max_line,omitempty"`
}

// Run follows the sources until ctx is done. Read positions and the
// journal cursor live in stateDir ("" keeps them in memory). stdin, when
// not nil, is read to its end as one more source.
func (e *Engine) Run(ctx context.Context, src Sources, stateDir string, stdin io.Reader) error {
	posPath := ""
	if stateDir != "" {
		posPath = filepath.Join(stateDir, "positions.json")
	}
	pos, err := source.LoadPositions(posPath)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	line := func(l, path string) {
		mu.Lock()
		e.Line(l, path)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	if len(src.Files) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl := source.NewTailer(source.TailConfig{Paths: src.Files, FromStart: src.FromStart,
				Poll: time.Duration(src.PollMillis) * time.Millisecond, MaxLine: src.MaxLine}, pos)
			if err := tl.Run(ctx, line); err != nil {
				errs <- fmt.Errorf("following files: %w", err)
			}
		}()
	}
	if src.Journal {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := &source.Journal{Args: src.JournalArgs, Follow: true}
			err := j.Run(ctx, pos, func(je source.JournalEntry) {
				mu.Lock()
				e.Entry(je)
				mu.Unlock()
			})
			if err != nil {
				errs <- err
			}
		}()
	}
	if stdin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := source.ReadAll(stdin, src.MaxLine, func(l string) { line(l, "stdin") }); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Entry processes one journald entry.
func (e *Engine) Entry(je source.JournalEntry) {
	e.lines.Add(1)
	r := &e.rec
	e.dec.DecodeParts(je.Time, je.Host, je.Program, je.PID, je.Message, je.Message, r)
	if r.Decoded {
		e.decoded.Add(1)
	} else {
		e.undecoded.Add(1)
	}
	e.rt.Process(r, func(a sigma.Alert) { e.alert(a, "journal") })
}
