package budget

import (
	"fmt"
	"strings"
)

// Defaults for the service-wide cap when no policy budget is known yet
// (the unit is usually written before the agent's first policy arrives).
const (
	// DefaultCPUPercent is the scan budget assumed without a policy.
	DefaultCPUPercent = 25
	// ServiceHeadroomPercent is added to the scan budget for the kernel's
	// cap on the whole service: the always-on modules (firewall, log
	// inspection, on-access checks) run outside the scans' self-throttle
	// and must not be starved by the cap, only a runaway stopped by it.
	ServiceHeadroomPercent = 25
	// DefaultMemoryMax bounds the whole service. Idle the agent needs
	// under 40 MB; malware signatures loaded for a scan need a few hundred.
	DefaultMemoryMax = 1 << 30
	// IdleIOWeight is the cgroup v2 io.weight (1–10000, default 100) for a
	// budget with idle I/O: the kernel then favours the workload's I/O
	// over everything the agent does, not just the scanning threads.
	IdleIOWeight = 10
)

// ServiceLimits is the cgroup v2 resource cap systemd applies to the agent's
// whole service, on top of the self-throttling of its scans: the kernel
// enforces it even when a module misbehaves.
type ServiceLimits struct {
	CPUQuotaPercent int   // CPUQuota=, percent of one core; 0 = none
	MemoryMax       int64 // MemoryMax=, bytes; 0 = none
	IOWeight        int   // IOWeight=; 0 = the systemd default
}

// ServiceLimitsFor derives the service cap from a scan budget (cpuPercent
// of one core, 0 = no cap, and idle I/O). A budget without a CPU cap gives a
// service without one: the operator asked for none.
func ServiceLimitsFor(cpuPercent int, idleIO bool, memoryMax int64) ServiceLimits {
	l := ServiceLimits{MemoryMax: max(0, memoryMax)}
	if cpuPercent > 0 {
		l.CPUQuotaPercent = cpuPercent + ServiceHeadroomPercent
	}
	if idleIO {
		l.IOWeight = IdleIOWeight
	}
	return l
}

// Directives renders the limits as systemd [Service] lines, each preceded by
// a comment saying where it comes from. MemoryHigh sits at 7/8 of
// MemoryMax so the kernel reclaims and slows the agent before it would
// OOM-kill it. There is deliberately no Nice=: a niced agent answers
// fanotify permission requests late, and the workload's open() waits on
// those answers.
func (l ServiceLimits) Directives() string {
	var b strings.Builder
	if l.CPUQuotaPercent > 0 {
		fmt.Fprintf(&b, "# CPU cap (cgroup v2 cpu.max): the scan budget plus %d%% of a core for the always-on modules.\n", ServiceHeadroomPercent)
		fmt.Fprintf(&b, "CPUQuota=%d%%\n", l.CPUQuotaPercent)
	}
	if l.MemoryMax > 0 {
		b.WriteString("# Memory cap (cgroup v2 memory.high / memory.max).\n")
		fmt.Fprintf(&b, "MemoryHigh=%s\nMemoryMax=%s\n", bytesUnit(l.MemoryMax*7/8), bytesUnit(l.MemoryMax))
	}
	if l.IOWeight > 0 {
		b.WriteString("# Idle I/O budget: the workload's I/O goes first (cgroup v2 io.weight).\n")
		fmt.Fprintf(&b, "IOWeight=%d\n", l.IOWeight)
	}
	return b.String()
}

// bytesUnit writes n with the largest binary suffix systemd accepts that
// divides it exactly.
func bytesUnit(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprint(n)
}

// ParseBytes reads a systemd-style size: a number with an optional K, M or
// G suffix (binary units), as --memory-max takes it.
func ParseBytes(in string) (int64, error) {
	s := strings.TrimSpace(in)
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult, s = 1<<10, s[:n-1]
		case 'M', 'm':
			mult, s = 1<<20, s[:n-1]
		case 'G', 'g':
			mult, s = 1<<30, s[:n-1]
		}
	}
	var v int64
	if _, err := fmt.Sscan(s, &v); err != nil || v < 0 || fmt.Sprint(v) != s {
		return 0, fmt.Errorf("size %q: want a whole number of bytes with an optional K, M or G suffix", in)
	}
	if v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: too large", in)
	}
	return v * mult, nil
}
