package firewall

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mamori-sec/mamori/firewall/policy"
)

// Store keeps the firewall's on-disk state in Dir: the policy in force
// (current.json) and an unconfirmed apply (pending.json), so a rollback
// survives the process that started it.
type Store struct{ Dir string }

// Pending is an apply waiting for confirmation.
type Pending struct {
	ID       string    `json:"id"`
	Deadline time.Time `json:"deadline"`
	// Previous is the policy to return to; nil means "no policy" (the
	// block-only table).
	Previous *policy.Policy `json:"previous"`
}

// Mark ties a policy source to the kernel state it produced, so that
// re-applying the same file from a new process costs one generation check.
type Mark struct {
	Source      string `json:"source"`      // sha256 of the policy file
	Fingerprint string `json:"fingerprint"` // plan fingerprint in the kernel
	Gen         uint32 `json:"gen"`         // ruleset generation after our commit
}

// LoadMark returns the saved mark, or nil.
func (s Store) LoadMark() *Mark {
	b, err := os.ReadFile(s.path("mark.json"))
	if err != nil {
		return nil
	}
	var m Mark
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return &m
}

// SaveMark saves the mark.
func (s Store) SaveMark(m Mark) error { return s.write("mark.json", m) }

// ErrNoPending is returned by Confirm when nothing waits for confirmation.
var ErrNoPending = errors.New("no unconfirmed firewall apply is pending")

func (s Store) path(name string) string { return filepath.Join(s.Dir, name) }

// Current returns the policy last applied through the store, or nil.
func (s Store) Current() (*policy.Policy, error) {
	b, err := os.ReadFile(s.path("current.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading current policy: %w", err)
	}
	if string(b) == "null" {
		return nil, nil
	}
	p, err := policy.DecodeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path("current.json"), err)
	}
	return p, nil
}

// SaveCurrent records p (nil: no policy) as the policy in force.
func (s Store) SaveCurrent(p *policy.Policy) error { return s.write("current.json", p) }

// LoadPending returns the pending apply, or nil.
func (s Store) LoadPending() (*Pending, error) {
	b, err := os.ReadFile(s.path("pending.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading pending apply: %w", err)
	}
	var p Pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path("pending.json"), err)
	}
	return &p, nil
}

// Confirm keeps the pending apply: the rollback finds nothing to do.
func (s Store) Confirm() error {
	err := os.Remove(s.path("pending.json"))
	if errors.Is(err, os.ErrNotExist) {
		return ErrNoPending
	}
	return err
}

func (s Store) write(name string, v any) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path(name + ".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return os.Rename(tmp, s.path(name))
}

// SafeApply applies p and records a pending rollback to the current policy
// due at now+within. The caller arranges for RollbackWhenDue to run (a
// timer in a long-running process, or a detached helper process for the
// CLI). It returns the pending record.
func (f *Firewall) SafeApply(ctx context.Context, s Store, p *policy.Policy, within time.Duration) (*Pending, []policy.Warning, error) {
	if prev, _ := s.LoadPending(); prev != nil {
		return nil, nil, fmt.Errorf("an unconfirmed apply (%s) is pending until %s: confirm it or let it roll back first", prev.ID, prev.Deadline.Format(time.RFC3339))
	}
	c, warns, err := f.Compile(p)
	if err != nil {
		return nil, nil, fmt.Errorf("validating policy: %w", err)
	}
	prev, err := s.Current()
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, 8)
	rand.Read(id)
	pend := &Pending{ID: hex.EncodeToString(id), Deadline: time.Now().Add(within), Previous: prev}
	// The pending record goes to disk before the kernel changes, so a
	// crash in between still rolls back.
	if err := s.write("pending.json", pend); err != nil {
		return nil, nil, err
	}
	if _, err := f.ApplyCompiled(ctx, c); err != nil {
		os.Remove(s.path("pending.json"))
		return nil, nil, err
	}
	if err := s.SaveCurrent(p); err != nil {
		return nil, nil, err
	}
	return pend, warns, nil
}

// ApplyAndRecord applies p, compiled as c, without a confirmation window
// and records it as current.
func (f *Firewall) ApplyAndRecord(ctx context.Context, s Store, p *policy.Policy, c *policy.Compiled) (bool, error) {
	changed, err := f.ApplyCompiled(ctx, c)
	if err != nil {
		return false, err
	}
	return changed, s.SaveCurrent(p)
}

// RollbackWhenDue waits for the pending apply id's deadline and, if it is
// still unconfirmed then, restores the previous policy. It reports whether
// it rolled back.
func (f *Firewall) RollbackWhenDue(ctx context.Context, s Store, id string) (bool, error) {
	pend, err := s.LoadPending()
	if err != nil || pend == nil || pend.ID != id {
		return false, err
	}
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-time.After(time.Until(pend.Deadline)):
	}
	pend, err = s.LoadPending()
	if err != nil || pend == nil || pend.ID != id {
		return false, err // confirmed, or replaced by a newer apply
	}
	if pend.Previous == nil {
		err = f.RemovePolicy()
	} else {
		_, _, err = f.Apply(ctx, pend.Previous)
	}
	if err != nil {
		return false, fmt.Errorf("rolling back: %w", err)
	}
	if err := s.SaveCurrent(pend.Previous); err != nil {
		return true, err
	}
	return true, os.Remove(s.path("pending.json"))
}
