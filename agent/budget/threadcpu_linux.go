//go:build linux

package budget

import (
	"runtime"
	"syscall"
	"time"
)

const rusageThread = 1 // RUSAGE_THREAD, linux/resource.h

// threadCPU returns the CPU time of the calling thread and its id.
func threadCPU() (tid int, cpu time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, 0
	}
	return syscall.Gettid(), time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lockThread pins the calling goroutine to its thread for good, so that
// the thread's CPU time is the goroutine's. The thread exits with the
// goroutine, so nothing else ever runs on it.
func lockThread() { runtime.LockOSThread() }
