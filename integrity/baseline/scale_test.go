package baseline

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/integrity/policy"
)

func million(n int) *Baseline {
	b := &Baseline{Header: Header{PolicyName: "scale"}}
	b.Entries = make([]Entry, n)
	for i := range b.Entries {
		e := &b.Entries[i]
		e.Path = fmt.Sprintf("/usr/lib/pkg%04d/sub%02d/file%07d.so", i/1000, (i/50)%20, i)
		e.Attrs = policy.AttrType | policy.AttrMode | policy.AttrUID | policy.AttrGID | policy.AttrSize | policy.AttrMTime | policy.AttrCTime | policy.AttrInode | policy.AttrNlink | policy.AttrSHA256
		e.Type, e.Mode, e.Size, e.MTime, e.CTime, e.Inode, e.Nlink = TypeFile, 0o644, int64(i*37), int64(i)*1e9, int64(i)*1e9+5, uint64(i)+1000, 1
		e.SHA256[0], e.SHA256[31] = byte(i), byte(i>>8)
	}
	b.Entries = Sort(b.Entries)
	return b
}

// TestMillionEntries: a million entries save, load and look up quickly.
// Long: runs with MAMORI_LONG=1 (about 3 s).
func TestMillionEntries(t *testing.T) {
	if os.Getenv("MAMORI_LONG") == "" {
		t.Skip("long test: set MAMORI_LONG=1")
	}
	b := million(1_000_000)
	p := filepath.Join(t.TempDir(), "m.db")
	t0 := time.Now()
	if err := Save(p, testKey, b); err != nil {
		t.Fatal(err)
	}
	save := time.Since(t0)
	fi, _ := os.Stat(p)
	t0 = time.Now()
	got, err := Load(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	load := time.Since(t0)
	t0 = time.Now()
	for i := 0; i < 100_000; i++ {
		e := &b.Entries[rand.IntN(len(b.Entries))]
		if j, ok := got.Find(e.Path); !ok || got.Entries[j].Inode != e.Inode {
			t.Fatalf("Find(%q) = %d, %v", e.Path, j, ok)
		}
	}
	look := time.Since(t0) / 100_000
	t.Logf("1M entries: file %d MB (%.0f bytes/entry), save %v, load %v, lookup %v", fi.Size()>>20, float64(fi.Size())/1e6, save, load, look)
	if look > 20*time.Microsecond {
		t.Errorf("lookup takes %v", look)
	}
}

func BenchmarkFind(b *testing.B) {
	bl := million(1_000_000)
	paths := make([]string, 1024)
	for i := range paths {
		paths[i] = bl.Entries[rand.IntN(len(bl.Entries))].Path
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bl.Find(paths[i%len(paths)])
	}
}

func BenchmarkDecode100k(b *testing.B) {
	bl := million(100_000)
	p := filepath.Join(b.TempDir(), "m.db")
	if err := Save(p, testKey, bl); err != nil {
		b.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(data, testKey); err != nil {
			b.Fatal(err)
		}
	}
}
