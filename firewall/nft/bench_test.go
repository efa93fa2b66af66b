package nft

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/firewall/internal/nstest"
)

// benchPolicy is the policy the benchmarks apply; bench/firewall/run.sh
// points it at the generated 10,000-rule policy.
func benchPolicy() string {
	if p := os.Getenv("MAMORI_FW_BENCH_POLICY"); p != "" {
		return p
	}
	return "testdata/web.yaml"
}

func benchConn(b *testing.B) *Conn {
	nstest.RequireRoot(b, "nft")
	ns := nstest.New(b)
	k, err := Open(ns.FD)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { k.Close() })
	return k
}

// BenchmarkApply measures a full apply into an empty namespace.
func BenchmarkApply(b *testing.B) {
	k := benchConn(b)
	p := plan(b, benchPolicy())
	for b.Loop() {
		b.StopTimer()
		if err := k.Delete(); err != nil {
			b.Fatal(err)
		}
		k.knownSet = false
		b.StartTimer()
		if _, err := k.Apply(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReapplyUnchanged measures re-applying the policy in force: by
// generation (nothing committed since) and by a full read and compare.
func BenchmarkReapplyUnchanged(b *testing.B) {
	k := benchConn(b)
	p := plan(b, benchPolicy())
	if _, err := k.Apply(p); err != nil {
		b.Fatal(err)
	}
	b.Run("generation", func(b *testing.B) {
		for b.Loop() {
			if changed, err := k.Apply(p); err != nil || changed {
				b.Fatal(changed, err)
			}
		}
	})
	b.Run("full-compare", func(b *testing.B) {
		for b.Loop() {
			k.knownSet = false
			if changed, err := k.Apply(p); err != nil || changed {
				b.Fatal(changed, err)
			}
		}
	})
}

// BenchmarkBlock100k measures loading 100,000 addresses into the block set
// in one batch; addr/s is the figure to quote.
func BenchmarkBlock100k(b *testing.B) {
	k := benchConn(b)
	es := make([]BlockEntry, 100000)
	for i := range es {
		a := netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)})
		es[i] = BlockEntry{Prefix: netip.PrefixFrom(a, 32), TTL: time.Hour}
	}
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		if err := k.Delete(); err != nil {
			b.Fatal(err)
		}
		if err := k.EnsureBlockSets(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := k.Block(es); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(len(es))*float64(b.N)/total.Seconds(), "addr/s")
}
