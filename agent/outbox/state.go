package outbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mamori-sec/mamori/agent/internal/atomicfile"
)

// state is the small file that survives restarts next to the segments: the
// first unacknowledged sequence number and the overflow counters. It is
// replaced atomically (write, fsync, rename, fsync dir) so a crash leaves
// either the old or the new version, never a mix.
type state struct {
	Acked    uint64 `json:"acked"`    // first sequence number not yet acknowledged
	Dropped  int64  `json:"dropped"`  // events dropped by the overflow policy, ever
	Reported int64  `json:"reported"` // of Dropped, how many were reported as an event
}

const stateFile = "cursor.json"

func loadState(dir string) (state, error) {
	var s state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading outbox cursor: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return state{}, fmt.Errorf("decoding outbox cursor %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

func saveState(dir string, s state) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding outbox cursor: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), b, 0o600)
}
