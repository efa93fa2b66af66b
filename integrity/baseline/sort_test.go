package baseline

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortAndChunks: both orderings sort by path and keep the last of
// duplicate paths, across chunk boundaries too.
func TestSortAndChunks(t *testing.T) {
	for _, n := range []int{0, 1, 7, chunkLen - 1, chunkLen, 3*chunkLen + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 1))
			var in []Entry
			var c Chunks
			want := map[string]int64{}
			for i := 0; i < n; i++ {
				p := fmt.Sprintf("/p/%d", r.IntN(n/2+1)) // many duplicates
				e := Entry{Path: p, Size: int64(i)}
				in = append(in, e)
				c.Add(&e)
				want[p] = int64(i) // the last one wins
			}
			for name, got := range map[string][]Entry{"Sort": Sort(slices.Clone(in)), "Chunks": c.Sorted()} {
				if len(got) != len(want) {
					t.Fatalf("%s: %d entries, want %d", name, len(got), len(want))
				}
				for i := range got {
					if i > 0 && got[i-1].Path >= got[i].Path {
						t.Fatalf("%s: not sorted at %d: %q, %q", name, i, got[i-1].Path, got[i].Path)
					}
					if got[i].Size != want[got[i].Path] {
						t.Errorf("%s: %s kept entry %d, want the last, %d", name, got[i].Path, got[i].Size, want[got[i].Path])
					}
				}
			}
		})
	}
}
