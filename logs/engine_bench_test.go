package logs

import (
	"bufio"
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/logs/source"
)

// BenchmarkAuthLog measures decoding plus the built-in pack on the
// generated bench auth.log (first 200k lines), one core.
func BenchmarkAuthLog(b *testing.B) {
	f, err := os.Open("/tmp/benchdata/logs/auth.log")
	if err != nil {
		b.Skip("no /tmp/benchdata/logs/auth.log: run /work/shared/bench/gen-authlog.sh")
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(lines) < 200000 {
		lines = append(lines, sc.Text())
	}
	set, err := LoadRules(nil, false, true)
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := New(context.Background(), Config{Rules: set, Location: time.UTC, Ref: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}, func(event.Event) {})
		for _, l := range lines {
			e.Line(l, "auth.log")
		}
	}
	b.ReportMetric(float64(len(lines))*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	// On a shared machine wall time says little: lines per CPU second of
	// this process is the one-core figure.
	b.ReportMetric(float64(len(lines))*float64(b.N)/(cpuTime()-cpu0).Seconds(), "lines/cpu-s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAnalyzeFile is the analyze path (Engine.Analyze): reading and
// splitting the file included (1M lines).
func BenchmarkAnalyzeFile(b *testing.B) {
	if _, err := os.Stat("/tmp/benchdata/logs/auth.log"); err != nil {
		b.Skip("no /tmp/benchdata/logs/auth.log")
	}
	set, err := LoadRules(nil, false, true)
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	n := 0
	for i := 0; i < b.N; i++ {
		e := New(context.Background(), Config{Rules: set, Location: time.UTC}, func(event.Event) {})
		rc, _ := source.OpenFile("/tmp/benchdata/logs/auth.log", nil)
		e.Analyze(context.Background(), rc, "auth.log", 0)
		rc.Close()
		n += int(e.Stats().Lines)
	}
	b.ReportMetric(float64(n)/(cpuTime()-cpu0).Seconds(), "lines/cpu-s")
}
