package cli

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile of the whole command to the file named
// by MAMORI_CPUPROFILE, so the bench/ scripts can show where a run's time
// went (go tool pprof FILE). Off unless asked for; the returned stop is
// always safe to call.
func startProfile() (stop func()) {
	pf := os.Getenv("MAMORI_CPUPROFILE")
	if pf == "" {
		return func() {}
	}
	fh, err := os.Create(pf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mamori: MAMORI_CPUPROFILE:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(fh); err != nil {
		fmt.Fprintln(os.Stderr, "mamori: MAMORI_CPUPROFILE:", err)
		fh.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		fh.Close()
	}
}
