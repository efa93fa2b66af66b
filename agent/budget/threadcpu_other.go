//go:build !linux

package budget

import "time"

func threadCPU() (int, time.Duration) { return 0, ProcessCPU() }
func lockThread()                     {}
