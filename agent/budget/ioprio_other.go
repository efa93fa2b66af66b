//go:build !linux

package budget

func setIdleIO() {}

// IOPrioClass is not available off Linux.
func IOPrioClass(int) int { return -1 }
