// Package recon detects reconnaissance against this host — TCP and UDP
// port scans — from the (source, protocol, port) triples the kernel records
// for new inbound connections within a sliding window (the firewall's
// dynamic recon sets). It is pure logic: feed it what the kernel holds now,
// it says which sources crossed the threshold.
package recon

import (
	"net/netip"
	"slices"
	"time"
)

// Probe is one new inbound connection attempt's key.
type Probe struct {
	Src   netip.Addr
	Proto string // "tcp" or "udp"
	Port  uint16
}

// Finding is one detected scan.
type Finding struct {
	Src netip.Addr
	// Kind is "tcp port scan", "udp port scan" or "tcp/udp port scan".
	Kind  string
	Ports []uint16 // distinct ports touched, sorted, at most MaxPorts
	Count int      // distinct (protocol, port) pairs touched
}

// MaxPorts bounds the ports listed in a finding.
const MaxPorts = 64

// Detector reports a source once it touched at least Threshold distinct
// ports, then stays quiet about it for Cooldown.
type Detector struct {
	Threshold int
	Cooldown  time.Duration
	reported  map[netip.Addr]time.Time
}

// Observe takes the probes currently in the window and returns new
// findings. Loopback sources are ignored: local tools probing localhost
// are not an attack on the host.
func (d *Detector) Observe(now time.Time, probes []Probe) []Finding {
	if d.reported == nil {
		d.reported = map[netip.Addr]time.Time{}
	}
	type acc struct {
		ports    map[uint16]bool
		tcp, udp bool
		pairs    int
	}
	by := map[netip.Addr]*acc{}
	seen := map[Probe]bool{}
	for _, p := range probes {
		p.Src = p.Src.Unmap()
		if p.Src.IsLoopback() || seen[p] {
			continue
		}
		seen[p] = true
		a := by[p.Src]
		if a == nil {
			a = &acc{ports: map[uint16]bool{}}
			by[p.Src] = a
		}
		a.ports[p.Port] = true
		a.pairs++
		a.tcp = a.tcp || p.Proto == "tcp"
		a.udp = a.udp || p.Proto == "udp"
	}
	for src, t := range d.reported {
		if now.Sub(t) >= d.Cooldown {
			delete(d.reported, src)
		}
	}
	var out []Finding
	for src, a := range by {
		if a.pairs < d.Threshold {
			continue
		}
		if _, ok := d.reported[src]; ok {
			continue
		}
		d.reported[src] = now
		f := Finding{Src: src, Count: a.pairs, Kind: "tcp port scan"}
		switch {
		case a.tcp && a.udp:
			f.Kind = "tcp/udp port scan"
		case a.udp:
			f.Kind = "udp port scan"
		}
		for p := range a.ports {
			f.Ports = append(f.Ports, p)
		}
		slices.Sort(f.Ports)
		if len(f.Ports) > MaxPorts {
			f.Ports = f.Ports[:MaxPorts]
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Finding) int { return a.Src.Compare(b.Src) })
	return out
}
