package watch

import (
	"bytes"
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
}

var userCache sync.Map // uid → name

// resolveActor reads what /proc says about pid now, while the process
// most likely still exists. A process that is already gone keeps its pid
// with an "unknown" executable.
func resolveActor(procRoot string, pid int) Actor {
	a := Actor{PID: pid, UID: -1}
	if pid <= 0 {
		return a
	}
	dir := procRoot + "/" + strconv.Itoa(pid)
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		a.Exe = exe
	}
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
		a.Cmdline = strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	if b, err := os.ReadFile(dir + "/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				if f := strings.Fields(rest); len(f) > 1 {
					// The effective uid is the one the kernel checked.
					if u, err := strconv.Atoi(f[1]); err == nil {
						a.UID = u
					}
				}
				break
			}
		}
	}
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
