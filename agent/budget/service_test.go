package budget

import (
	"strings"
	"testing"
)

func TestServiceLimitsFor(t *testing.T) {
	tests := []struct {
		cpu    int
		idle   bool
		mem    int64
		want   []string // lines the directives must hold
		absent []string
	}{
		{25, true, 1 << 30, []string{"CPUQuota=50%", "MemoryHigh=896M", "MemoryMax=1G", "IOWeight=10"}, []string{"Nice="}},
		{10, false, 512 << 20, []string{"CPUQuota=35%", "MemoryMax=512M"}, []string{"IOWeight=", "Nice="}},
		{0, false, 0, nil, []string{"CPUQuota=", "MemoryMax=", "IOWeight="}}, // the policy asked for no cap
		{100, true, 1000, []string{"CPUQuota=125%", "MemoryMax=1000\n", "MemoryHigh=875\n"}, nil},
	}
	for _, tc := range tests {
		got := ServiceLimitsFor(tc.cpu, tc.idle, tc.mem).Directives()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("ServiceLimitsFor(%d, %v, %d) lacks %q:\n%s", tc.cpu, tc.idle, tc.mem, w, got)
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(got, a) {
				t.Errorf("ServiceLimitsFor(%d, %v, %d) has %q:\n%s", tc.cpu, tc.idle, tc.mem, a, got)
			}
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1G", 1 << 30, true}, {"512M", 512 << 20, true}, {"64k", 64 << 10, true}, {"4096", 4096, true}, {" 2G ", 2 << 30, true},
		{"", 0, false}, {"G", 0, false}, {"-1M", 0, false}, {"1.5G", 0, false}, {"1T", 0, false}, {"+5", 0, false},
		{"99999999999999999999G", 0, false}, {"9000000000G", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseBytes: never panics, never negative, and what it accepts renders
// back to a size it reads the same.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"1G", "512M", "64k", "0", "-1", "1.5G", "9000000000G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseBytes(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseBytes(%q) = %d", s, v)
		}
		if back, err := ParseBytes(bytesUnit(v)); err != nil || back != v {
			t.Fatalf("ParseBytes(bytesUnit(%d)=%q) = %d, %v", v, bytesUnit(v), back, err)
		}
	})
}
