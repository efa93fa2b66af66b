package firewall

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// OwnerDir holds who manages mamori's table in each network namespace: the
// agent's firewall module claims it, and `mamori firewall apply` records
// its applies there. The CLI and an agent applying different policies to
// one table would undo each other every poll; the claim lets the CLI
// refuse, and the record lets the agent say who changed its table. It is
// under /run: a claim must not survive a reboot. A variable for tests.
var OwnerDir = "/run/mamori/firewall"

// Owner is a claim or a record in OwnerDir.
type Owner struct {
	Who         string    `json:"who"` // "agent" or "cli"
	PID         int       `json:"pid"`
	Since       time.Time `json:"since"`
	Fingerprint string    `json:"fingerprint,omitempty"` // the plan the CLI applied
}

// ErrAgentOwns is returned (wrapped) by CheckNotAgentOwned when a running
// agent manages the table.
var ErrAgentOwns = errors.New("the mamori agent's firewall module manages this firewall")

// nsKey names the network namespace the Firewall works in by its inode,
// the identity `ip netns identify` and /proc/PID/ns/net share.
func (f *Firewall) nsKey() (string, error) {
	var st unix.Stat_t
	var err error
	if f.opt.NetNS >= 0 {
		err = unix.Fstat(f.opt.NetNS, &st)
	} else {
		err = unix.Stat("/proc/self/ns/net", &st)
	}
	if err != nil {
		return "", fmt.Errorf("identifying the network namespace: %w", err)
	}
	return "net-" + strconv.FormatUint(st.Ino, 10), nil
}

func (f *Firewall) ownerPath(who string) (string, error) {
	k, err := f.nsKey()
	if err != nil {
		return "", err
	}
	return filepath.Join(OwnerDir, k+"."+who+".json"), nil
}

func (f *Firewall) writeOwner(o Owner) error {
	path, err := f.ownerPath(o.Who)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(OwnerDir, 0o755); err != nil {
		return fmt.Errorf("recording the firewall owner: %w", err)
	}
	b, _ := json.Marshal(o)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("recording the firewall owner: %w", err)
	}
	return os.Rename(tmp, path)
}

func (f *Firewall) readOwner(who string) *Owner {
	path, err := f.ownerPath(who)
	if err != nil {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var o Owner
	if json.Unmarshal(b, &o) != nil || o.PID <= 0 {
		return nil
	}
	return &o
}

// ClaimForAgent records that this process (the agent) manages the table.
func (f *Firewall) ClaimForAgent() error {
	if o := f.readOwner("agent"); o != nil && o.PID == os.Getpid() {
		return nil
	}
	return f.writeOwner(Owner{Who: "agent", PID: os.Getpid(), Since: time.Now().UTC()})
}

// ReleaseAgent drops this process's claim (the module was disabled), and
// the record of a forced CLI apply, which only the claimant needed.
func (f *Firewall) ReleaseAgent() {
	if o := f.readOwner("agent"); o != nil && o.PID == os.Getpid() {
		for _, who := range []string{"agent", "cli"} {
			if path, err := f.ownerPath(who); err == nil {
				os.Remove(path)
			}
		}
	}
}

// CheckNotAgentOwned returns an error wrapping ErrAgentOwns when a live
// agent other than this process claims the table. A claim whose process
// is gone is stale and ignored.
func (f *Firewall) CheckNotAgentOwned() error {
	o := f.readOwner("agent")
	if o == nil || o.PID == os.Getpid() || !alive(o.PID) {
		return nil
	}
	return fmt.Errorf("%w (pid %d, since %s): it would restore its own policy over this one", ErrAgentOwns, o.PID, o.Since.Format(time.RFC3339))
}

// RecordCLIApply notes that the CLI applied plan fp, so that an agent
// finding its table changed can say by whom.
func (f *Firewall) RecordCLIApply(fp string) error {
	return f.writeOwner(Owner{Who: "cli", PID: os.Getpid(), Since: time.Now().UTC(), Fingerprint: fp})
}

// lastCLIApply returns the CLI's last apply record, or nil.
func (f *Firewall) lastCLIApply() *Owner { return f.readOwner("cli") }

func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
