package policy

import (
	"os"
	"testing"
)

// benchPolicy is the policy the benchmarks load; bench/firewall/run.sh
// points it at the generated 10,000-rule policy.
func benchPolicy(b *testing.B) []byte {
	path := os.Getenv("MAMORI_FW_BENCH_POLICY")
	if path == "" {
		path = "testdata/web.yaml"
	}
	src, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return src
}

// BenchmarkLoad measures what `mamori firewall apply` does before the
// kernel: decode and compile.
func BenchmarkLoad(b *testing.B) {
	src := benchPolicy(b)
	b.ReportAllocs()
	for b.Loop() {
		p, err := DecodeYAML(src)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Compile(p, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
