package watch

import (
	"bytes"
	"errors"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
)

// Actor is the process that caused an event, as far as it is known.
type Actor struct {
	PID     int
	Exe     string
	Cmdline string
	UID     int // -1 unknown
	User    string
	// Unknown says why the process could not be identified (it exited
	// before it was looked up, its pid now belongs to another process, it
	// executed another program right after the change). Exe, Cmdline and
	// UID are then left empty rather than guessed: a wrong executable is
	// worse than none.
	Unknown string
	// start is the process's start time (clock ticks after boot, field 22
	// of /proc/PID/stat): a pid that shows another start time is another
	// process.
	start uint64
}

// Reasons an actor is unknown.
const (
	UnknownNoPID    = "the kernel gave no pid"
	UnknownExited   = "the process exited before it could be identified"
	UnknownReused   = "the process exited and its pid was reused before it could be identified"
	UnknownExecuted = "the process executed another program right after the change; the program that made it is not known"
	UnknownOverflow = "the kernel's event queue overflowed, so an exec by the process may have gone unseen"
)

var userCache sync.Map // uid → name

var errGone = errors.New("process gone")

// procStart reads the start time of pid from /proc/PID/stat.
func procStart(procRoot string, pid int) (uint64, error) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, errGone
	}
	return parseStatStart(b)
}

// parseStatStart returns the start time (field 22) of a /proc/PID/stat
// line, or errGone for a process that has exited (zombie or dead) or a
// line it cannot read.
func parseStatStart(b []byte) (uint64, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start behind the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errGone
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, errGone
	}
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if f[0] == "Z" || f[0] == "X" {
		return 0, errGone // exited, not yet reaped: nothing left to read
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, errGone
	}
	return v, nil
}

// resolveActor reads what /proc says about pid now. alive, when not nil,
// reports whether the very process that caused the event still exists
// (a pidfd from the kernel): with it a pid reused by another process is
// told apart even when the new one happens to have been read whole.
// Without it, the start time read before and after the lookup must agree.
func resolveActor(procRoot string, pid int, alive func() bool) Actor {
	a := Actor{PID: pid, UID: -1}
	if pid <= 0 {
		a.Unknown = UnknownNoPID
		return a
	}
	s1, err := procStart(procRoot, pid)
	if err != nil {
		a.Unknown = UnknownExited
		return a
	}
	dir := procRoot + "/" + strconv.Itoa(pid)
	exe, exeErr := os.Readlink(dir + "/exe")
	var cmdline []byte
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
		cmdline = b
	}
	uid := -1
	if b, err := os.ReadFile(dir + "/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				if f := strings.Fields(rest); len(f) > 1 {
					// The effective uid is the one the kernel checked.
					if u, err := strconv.Atoi(f[1]); err == nil {
						uid = u
					}
				}
				break
			}
		}
	}
	s2, err := procStart(procRoot, pid)
	switch {
	case err != nil || exeErr != nil:
		a.Unknown = UnknownExited
		return a
	case s1 != s2:
		a.Unknown = UnknownReused
		return a
	case alive != nil && !alive():
		// The process of the event is gone; what was read under its pid
		// may belong to a successor.
		a.Unknown = UnknownExited
		return a
	}
	a.start = s1
	a.Exe = exe
	a.Cmdline = strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	a.UID = uid
	if a.UID >= 0 {
		if n, ok := userCache.Load(a.UID); ok {
			a.User = n.(string)
		} else if u, err := user.LookupId(strconv.Itoa(a.UID)); err == nil {
			a.User = u.Username
			userCache.Store(a.UID, u.Username)
		}
	}
	return a
}

// forget marks a resolved actor as not identifiable, for the reason given.
func (a *Actor) forget(reason string) {
	if a.Unknown != "" {
		return
	}
	*a = Actor{PID: a.PID, UID: -1, Unknown: reason}
}
