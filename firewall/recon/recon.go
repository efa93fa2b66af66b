// Package recon detects reconnaissance against this host — TCP and UDP
// port scans, and host sweeps (one source probing the same port, or
// pinging, across several of this host's addresses) — from the probes the
// kernel records within a sliding window (the firewall's dynamic recon
// sets: source, destination, protocol, TCP flags, port). It labels each
// finding with the scan types the flags show (SYN/connect, FIN, NULL, Xmas,
// ACK, UDP, ICMP echo). It is pure logic: feed it what the kernel holds
// now, it says which sources crossed a threshold.
package recon

import (
	"net/netip"
	"slices"
	"time"
)

// Probe is one inbound probe's key.
type Probe struct {
	Src, Dst netip.Addr
	Proto    string // "tcp", "udp", "icmp" or "icmpv6"
	Flags    uint8  // TCP flags; 0 otherwise
	Port     uint16 // 0 for ICMP
}

// Kinds of finding.
const (
	KindPortScan = "port scan"
	KindSweep    = "host sweep"
)

// Scan types, from the probes' protocol and TCP flags.
const (
	TypeSYN   = "tcp-syn/connect"
	TypeFIN   = "tcp-fin"
	TypeNULL  = "tcp-null"
	TypeXmas  = "tcp-xmas"
	TypeACK   = "tcp-ack"
	TypeTCP   = "tcp-other"
	TypeUDP   = "udp"
	TypeICMP  = "icmp-echo"
	tcpFlags  = 0x3f // FIN SYN RST PSH ACK URG; ECE and CWR say nothing of the scan
	flagFIN   = 0x01
	flagSYN   = 0x02
	flagPSH   = 0x08
	flagACK   = 0x10
	flagURG   = 0x20
	flagsXmas = flagFIN | flagPSH | flagURG
)

// ScanType labels one probe.
func ScanType(p Probe) string {
	switch p.Proto {
	case "udp":
		return TypeUDP
	case "icmp", "icmpv6":
		return TypeICMP
	case "tcp":
		switch p.Flags & tcpFlags {
		case flagSYN:
			return TypeSYN
		case flagFIN:
			return TypeFIN
		case 0:
			return TypeNULL
		case flagsXmas:
			return TypeXmas
		case flagACK:
			return TypeACK
		}
		return TypeTCP
	}
	return p.Proto
}

// Finding is one detected scan or sweep.
type Finding struct {
	Src netip.Addr
	// Kind is KindPortScan or KindSweep.
	Kind string
	// Label is a human description: "tcp port scan", "udp port scan",
	// "tcp/udp port scan", "icmp host sweep", "tcp host sweep" …
	Label string
	// Types are the scan types seen from Src (TypeSYN …), sorted.
	Types []string
	Ports []uint16     // distinct ports touched, sorted, at most MaxList
	Addrs []netip.Addr // distinct local addresses probed, sorted, at most MaxList
	// Count is the distinct (protocol, port) pairs for a port scan, the
	// distinct addresses for a sweep.
	Count int
}

// MaxList bounds the ports and addresses listed in a finding.
const MaxList = 64

// Detector reports a source once it touched at least Threshold distinct
// ports (a port scan), or at least Hosts distinct local addresses on one
// port or by ping (a sweep), then stays quiet about that source and kind
// for Cooldown.
type Detector struct {
	Threshold int
	Hosts     int
	Cooldown  time.Duration
	reported  map[reportKey]time.Time
}

type reportKey struct {
	src  netip.Addr
	kind string
}

type service struct {
	proto string
	port  uint16
}

type acc struct {
	pairs map[service]bool                // port scan: distinct (proto, port)
	dsts  map[service]map[netip.Addr]bool // sweep: addresses per (proto, port); ICMP has port 0
	types map[string]bool                 // scan types seen
	all   map[netip.Addr]bool             // every destination
}

// Observe takes the probes currently in the window and returns new
// findings, sorted by source then kind. Loopback sources are ignored:
// local tools probing localhost are not an attack on the host.
func (d *Detector) Observe(now time.Time, probes []Probe) []Finding {
	if d.reported == nil {
		d.reported = map[reportKey]time.Time{}
	}
	hosts := d.Hosts
	if hosts <= 0 {
		hosts = 5
	}
	by := map[netip.Addr]*acc{}
	for _, p := range probes {
		p.Src, p.Dst = p.Src.Unmap(), p.Dst.Unmap()
		if p.Src.IsLoopback() {
			continue
		}
		a := by[p.Src]
		if a == nil {
			a = &acc{pairs: map[service]bool{}, dsts: map[service]map[netip.Addr]bool{}, types: map[string]bool{}, all: map[netip.Addr]bool{}}
			by[p.Src] = a
		}
		sv := service{p.Proto, p.Port}
		if p.Proto == "icmpv6" {
			sv.proto = "icmp" // one ping sweep whatever the family
		}
		if p.Proto == "tcp" || p.Proto == "udp" {
			a.pairs[sv] = true
		}
		if a.dsts[sv] == nil {
			a.dsts[sv] = map[netip.Addr]bool{}
		}
		if p.Dst.IsValid() {
			a.dsts[sv][p.Dst] = true
			a.all[p.Dst] = true
		}
		a.types[ScanType(p)] = true
	}
	for k, t := range d.reported {
		if now.Sub(t) >= d.Cooldown {
			delete(d.reported, k)
		}
	}
	var out []Finding
	for src, a := range by {
		if len(a.pairs) >= d.Threshold && d.fresh(now, src, KindPortScan) {
			f := Finding{Src: src, Kind: KindPortScan, Count: len(a.pairs), Types: sortedKeys(a.types), Addrs: sortedAddrs(a.all)}
			var tcp, udp bool
			for sv := range a.pairs {
				f.Ports = append(f.Ports, sv.port)
				tcp = tcp || sv.proto == "tcp"
				udp = udp || sv.proto == "udp"
			}
			f.Ports = bounded(uniqueSorted(f.Ports))
			switch {
			case tcp && udp:
				f.Label = "tcp/udp port scan"
			case udp:
				f.Label = "udp port scan"
			default:
				f.Label = "tcp port scan"
			}
			out = append(out, f)
		}
		// A sweep: the services probed on at least hosts addresses.
		var swept []service
		addrs := map[netip.Addr]bool{}
		for sv, ds := range a.dsts {
			if len(ds) >= hosts {
				swept = append(swept, sv)
				for x := range ds {
					addrs[x] = true
				}
			}
		}
		if len(swept) > 0 && d.fresh(now, src, KindSweep) {
			f := Finding{Src: src, Kind: KindSweep, Count: len(addrs), Addrs: sortedAddrs(addrs)}
			protos := map[string]bool{}
			types := map[string]bool{}
			for _, sv := range swept {
				protos[sv.proto] = true
				if sv.proto != "icmp" {
					f.Ports = append(f.Ports, sv.port)
				}
			}
			// The types of the probes that made the sweep, not of
			// everything the source sent.
			for _, p := range probes {
				p.Src = p.Src.Unmap()
				sv := service{p.Proto, p.Port}
				if sv.proto == "icmpv6" {
					sv.proto = "icmp"
				}
				if p.Src == src && slices.Contains(swept, sv) {
					types[ScanType(p)] = true
				}
			}
			f.Types = sortedKeys(types)
			f.Ports = bounded(uniqueSorted(f.Ports))
			ps := sortedKeys(protos)
			f.Label = ps[0] + " host sweep"
			if len(ps) > 1 {
				f.Label = "multi-protocol host sweep"
			}
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b Finding) int {
		if c := a.Src.Compare(b.Src); c != 0 {
			return c
		}
		return compareStrings(a.Kind, b.Kind)
	})
	return out
}

// fresh reports whether src has not been reported for kind within the
// cooldown, and marks it reported.
func (d *Detector) fresh(now time.Time, src netip.Addr, kind string) bool {
	k := reportKey{src, kind}
	if _, ok := d.reported[k]; ok {
		return false
	}
	d.reported[k] = now
	return true
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedAddrs(m map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return bounded(out)
}

func uniqueSorted(ps []uint16) []uint16 {
	slices.Sort(ps)
	return slices.Compact(ps)
}

func bounded[T any](s []T) []T {
	if len(s) > MaxList {
		return s[:MaxList]
	}
	return s
}
