//go:build linux

package budget

import (
	"runtime"
	"syscall"
)

// ioprio_set(2) constants from linux/ioprio.h.
const (
	ioprioWhoProcess = 1
	ioprioClassIdle  = 3
	ioprioClassShift = 13
)

// setIdleIO puts the calling goroutine's thread in the idle I/O class. The
// goroutine is locked to the thread first and never unlocked, so the thread
// (idle for good) serves only this scanning goroutine and exits with it: no
// other goroutine — the outbox's fsyncs, say — ever runs at idle priority.
// A thread already idle is one we locked earlier, so the check makes the
// call cheap after the first time.
func setIdleIO() {
	if IOPrioClass(0) == ioprioClassIdle {
		return
	}
	runtime.LockOSThread()
	syscall.Syscall(syscall.SYS_IOPRIO_SET, ioprioWhoProcess, 0, ioprioClassIdle<<ioprioClassShift)
}

// IOPrioClass returns the I/O scheduling class of thread tid (0 = the
// calling thread), or -1 when it cannot be read.
func IOPrioClass(tid int) int {
	r, _, errno := syscall.Syscall(syscall.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return -1
	}
	return int(r) >> ioprioClassShift
}
