package source

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// JournalEntry is the part of a journald entry the decoders use.
type JournalEntry struct {
	Time    time.Time
	Host    string
	Program string
	PID     string
	Message string
	Cursor  string
}

// ErrNoJournal means journalctl is missing or there is no journal to read.
var ErrNoJournal = errors.New("no journal")

// Journal follows the systemd journal through `journalctl -o json
// --follow`, resuming after the cursor saved in pos.
type Journal struct {
	// Bin is the journalctl binary (default "journalctl"); Args are extra
	// arguments (e.g. "-u", "ssh", or "--directory", dir in tests).
	Bin  string
	Args []string
	// Follow keeps reading new entries (false: read what is there, stop).
	Follow bool
}

// Run reads entries until ctx is done (or the end, without Follow),
// calling fn for each and saving the cursor in pos about once a second.
func (j *Journal) Run(ctx context.Context, pos *Positions, fn func(JournalEntry)) error {
	bin := j.Bin
	if bin == "" {
		bin = "journalctl"
	}
	if _, err := exec.LookPath(bin); err != nil {
		return fmt.Errorf("%w: %s not found", ErrNoJournal, bin)
	}
	args := append([]string{"-o", "json", "--no-pager"}, j.Args...)
	if j.Follow {
		args = append(args, "--follow")
	}
	if c := pos.GetCursor(); c != "" {
		args = append(args, "--after-cursor", c)
	} else if j.Follow {
		// First start: only what happens from now on (tail -n 0).
		args = append(args, "--lines", "0")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("following journal: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("following journal: %w", err)
	}
	defer pos.Save()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 256<<10), 1<<20)
	last := time.Now()
	for sc.Scan() {
		e, err := parseJournalJSON(sc.Bytes())
		if err != nil {
			continue
		}
		fn(e)
		pos.SetCursor(e.Cursor)
		if time.Since(last) > time.Second {
			pos.Save()
			last = time.Now()
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("following journal: journalctl: %w", err)
	}
	return nil
}

// parseJournalJSON reads one `journalctl -o json` line. MESSAGE may be a
// string or, for non-UTF-8 data, an array of bytes.
func parseJournalJSON(b []byte) (JournalEntry, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return JournalEntry{}, err
	}
	str := func(k string) string {
		raw, ok := m[k]
		if !ok {
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		var bs []byte
		var ints []int
		if json.Unmarshal(raw, &ints) == nil {
			for _, i := range ints {
				bs = append(bs, byte(i))
			}
			return string(bs)
		}
		return ""
	}
	e := JournalEntry{Host: str("_HOSTNAME"), Program: str("SYSLOG_IDENTIFIER"), PID: str("_PID"), Message: str("MESSAGE"), Cursor: str("__CURSOR")}
	if e.PID == "" {
		e.PID = str("SYSLOG_PID")
	}
	if e.Program == "" {
		e.Program = str("_COMM")
	}
	if us, err := strconv.ParseInt(str("__REALTIME_TIMESTAMP"), 10, 64); err == nil {
		e.Time = time.UnixMicro(us).UTC()
	}
	return e, nil
}
