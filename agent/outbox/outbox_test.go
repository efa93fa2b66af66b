package outbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/event"
)

func ev(i int) event.Event {
	return event.Event{ID: fmt.Sprintf("ev-%06d", i), Kind: event.KindLogAlert, Severity: event.SeverityLow, Message: fmt.Sprintf("event number %d", i)}
}

func appendN(t *testing.T, o *Outbox, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := o.Append(ev(i)); err != nil {
			t.Fatalf("Append(%d) = %v", i, err)
		}
	}
}

// drain reads and acknowledges everything, returning the IDs in order.
func drain(t *testing.T, o *Outbox, batch int) []string {
	t.Helper()
	var ids []string
	for {
		b, err := o.Read(batch, 1<<20)
		if err != nil {
			t.Fatalf("Read = %v", err)
		}
		if len(b.Events) == 0 {
			return ids
		}
		for _, raw := range b.Events {
			var e event.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("decoding %s: %v", raw, err)
			}
			ids = append(ids, e.ID)
		}
		if err := o.Ack(b); err != nil {
			t.Fatalf("Ack = %v", err)
		}
	}
}

func mustOpen(t *testing.T, dir string, opts Options) *Outbox {
	t.Helper()
	o, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	return o
}

func wantIDs(t *testing.T, got []string, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d events, want %d", len(got), n)
	}
	for i, id := range got {
		if want := ev(from + i).ID; id != want {
			t.Fatalf("event %d = %s, want %s", i, id, want)
		}
	}
}

func TestAppendReadAckAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir, Options{SegmentBytes: 4096})
	appendN(t, o, 0, 500)
	if st := o.Stats(); st.Depth != 500 {
		t.Fatalf("Depth = %d, want 500", st.Depth)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 5 {
		t.Fatalf("%d segments, want several with 4 KiB segments", len(segs))
	}
	wantIDs(t, drain(t, o, 37), 0, 500)
	if st := o.Stats(); st.Depth != 0 {
		t.Fatalf("Depth after drain = %d, want 0", st.Depth)
	}
	segs, _ = filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Errorf("%d segments after everything was acknowledged, want only the active one", len(segs))
	}
	o.Close()
}

func TestReadWithoutAckRepeats(t *testing.T) {
	o := mustOpen(t, t.TempDir(), Options{})
	defer o.Close()
	appendN(t, o, 0, 10)
	a, _ := o.Read(4, 1<<20)
	b, _ := o.Read(4, 1<<20)
	if a.First != b.First || a.Next != b.Next || string(a.Events[0]) != string(b.Events[0]) {
		t.Fatalf("two reads without Ack differ: %d..%d vs %d..%d", a.First, a.Next, b.First, b.Next)
	}
}

// TestCrashWithoutClose reopens a directory whose outbox was never closed,
// as after SIGKILL: every appended event must be there, and acknowledged
// ones must not come back.
func TestCrashWithoutClose(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir, Options{SegmentBytes: 8192})
	appendN(t, o, 0, 300)
	b, _ := o.Read(120, 1<<20)
	if err := o.Ack(b); err != nil {
		t.Fatal(err)
	}
	// no Close: the process "dies" here
	o2 := mustOpen(t, dir, Options{SegmentBytes: 8192})
	defer o2.Close()
	if st := o2.Stats(); st.Depth != 180 {
		t.Fatalf("Depth after reopen = %d, want 180", st.Depth)
	}
	appendN(t, o2, 300, 20)
	wantIDs(t, drain(t, o2, 50), 120, 200)
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(segs)
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	return segs[len(segs)-1]
}

func TestTornTailIsTruncated(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, path string) // damages the last record
	}{
		{"cut mid-payload", func(t *testing.T, p string) {
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-5)
		}},
		{"cut mid-header", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			_, valid := decodeSegment(b)
			last := lastRecordStart(b[:valid])
			os.Truncate(p, int64(last+3))
		}},
		{"flipped byte", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			b[len(b)-2] ^= 0x40
			os.WriteFile(p, b, 0o600)
		}},
		{"zeros appended", func(t *testing.T, p string) {
			// the last record stays; the test below expects one lost, so
			// also cut the last record
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-1)
			f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 4096))
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := mustOpen(t, dir, Options{})
			appendN(t, o, 0, 50)
			o.Close()
			tc.tear(t, lastSegment(t, dir))
			o2 := mustOpen(t, dir, Options{})
			defer o2.Close()
			if r := o2.Recovery(); r.TruncatedBytes == 0 || r.Records != 49 {
				t.Fatalf("Recovery = %+v, want 49 records and a truncated tail", r)
			}
			// new appends after recovery land after the good records
			appendN(t, o2, 50, 3)
			got := drain(t, o2, 100)
			if len(got) != 52 || got[48] != ev(48).ID || got[49] != ev(50).ID {
				t.Fatalf("after recovery got %d events (%v…), want 0..48 then 50..52", len(got), got[len(got)-4:])
			}
		})
	}
}

func lastRecordStart(b []byte) int {
	off, last := 0, 0
	for off < len(b) {
		_, n, err := decodeRecord(b[off:])
		if err != nil {
			break
		}
		last = off
		off += n
	}
	return last
}

func TestOverflowDropOldestCountsExactly(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir, Options{MaxBytes: 32 << 10, SegmentBytes: 8 << 10})
	const total = 1500
	appendN(t, o, 0, total)
	st := o.Stats()
	if st.Bytes > 32<<10 {
		t.Errorf("Bytes = %d, over the 64 KiB budget", st.Bytes)
	}
	if st.Dropped == 0 {
		t.Fatal("nothing dropped although 3000 events do not fit in 64 KiB")
	}
	o.Close()
	o2 := mustOpen(t, dir, Options{MaxBytes: 32 << 10, SegmentBytes: 8 << 10})
	defer o2.Close()
	if got := o2.Stats().Dropped; got != st.Dropped {
		t.Errorf("Dropped after reopen = %d, want %d (persisted)", got, st.Dropped)
	}
	got := drain(t, o2, 500)
	if int64(len(got))+st.Dropped != total {
		t.Fatalf("kept %d + dropped %d != %d appended", len(got), st.Dropped, total)
	}
	// the oldest went: what is left is the newest, in order
	wantIDs(t, got, total-len(got), len(got))
}

func TestOverflowDropNewestCountsExactly(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir, Options{MaxBytes: 32 << 10, SegmentBytes: 8 << 10, Overflow: DropNewest})
	defer o.Close()
	const total = 1500
	appendN(t, o, 0, total)
	st := o.Stats()
	got := drain(t, o, 500)
	if int64(len(got))+st.Dropped != total || st.Dropped == 0 {
		t.Fatalf("kept %d + dropped %d, want sum %d with some dropped", len(got), st.Dropped, total)
	}
	wantIDs(t, got, 0, len(got))
	// after the upload frees space, appends are accepted again
	appendN(t, o, total, 5)
	wantIDs(t, drain(t, o, 10), total, 5)
}

func TestGroupCommitConcurrentAppends(t *testing.T) {
	o := mustOpen(t, t.TempDir(), Options{})
	defer o.Close()
	const writers, per = 16, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := o.Append(ev(w*per + i)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	got := drain(t, o, 1000)
	if len(got) != writers*per {
		t.Fatalf("got %d events, want %d", len(got), writers*per)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("event %s twice", id)
		}
		seen[id] = true
	}
	o.mu.Lock()
	commits := o.commits
	o.mu.Unlock()
	if commits >= writers*per {
		t.Errorf("%d fsyncs for %d appends: concurrent appends were not grouped", commits, writers*per)
	}
	t.Logf("%d appends, %d fsyncs", writers*per, commits)
}

func TestCorruptCursorResendsEverything(t *testing.T) {
	dir := t.TempDir()
	o := mustOpen(t, dir, Options{})
	appendN(t, o, 0, 10)
	b, _ := o.Read(5, 1<<20)
	o.Ack(b)
	o.Close()
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{garbage"), 0o600)
	o2 := mustOpen(t, dir, Options{})
	defer o2.Close()
	if !o2.Recovery().CursorReset {
		t.Error("Recovery().CursorReset = false for a garbage cursor file")
	}
	// at-least-once: resent, the manager dedupes by ID
	wantIDs(t, drain(t, o2, 100), 0, 10)
}

func TestAppendAfterClose(t *testing.T) {
	o := mustOpen(t, t.TempDir(), Options{})
	o.Close()
	if err := o.Append(ev(1)); err != ErrClosed {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestBadOverflowOption(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{Overflow: "drop_random"}); err == nil {
		t.Fatal("Open with overflow drop_random succeeded")
	}
}

// BenchmarkAppendConcurrent measures durable appends per second with 32
// concurrent emitters sharing fsyncs (group commit).
func BenchmarkAppendConcurrent(b *testing.B) {
	o, err := Open(b.TempDir(), Options{MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	b.SetParallelism(16) // × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := o.Append(ev(i)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestConcurrentAppendUploadWithOverflow runs emitters against a slow
// uploader on a small budget: delivered + dropped is exactly what was
// appended, although drop_oldest keeps removing the segment being uploaded.
func TestConcurrentAppendUploadWithOverflow(t *testing.T) {
	o := mustOpen(t, t.TempDir(), Options{MaxBytes: 32 << 10, SegmentBytes: 4 << 10})
	defer o.Close()
	const writers, per = 4, 500
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := o.Append(ev(w*per + i)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	stop := make(chan struct{})
	delivered := map[string]int{}
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		for {
			b, err := o.Read(20, 1<<20)
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(10 * time.Millisecond) // a slow manager: the queue overflows
			for _, raw := range b.Events {
				var e event.Event
				json.Unmarshal(raw, &e)
				delivered[e.ID]++
			}
			o.Ack(b)
			if len(b.Events) == 0 {
				select {
				case <-stop:
					return
				default:
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-upDone
	for _, id := range drain(t, o, 100) {
		delivered[id]++
	}
	dropped := o.Stats().Dropped
	for id, n := range delivered {
		if n != 1 {
			t.Fatalf("event %s delivered %d times", id, n)
		}
	}
	// Whether anything overflows depends on scheduling (a starved writer
	// lets the uploader keep up); the exact-overflow tests above prove the
	// dropping itself. What must always hold is the accounting.
	if int64(len(delivered))+dropped != writers*per {
		t.Fatalf("delivered %d + dropped %d != appended %d", len(delivered), dropped, writers*per)
	}
	t.Logf("delivered %d, dropped %d of %d", len(delivered), dropped, writers*per)
}

// TestCrashAtEveryByte cuts the only segment at every offset, as a crash
// in the middle of a write could, and checks recovery keeps exactly the
// records that were whole.
func TestCrashAtEveryByte(t *testing.T) {
	src := t.TempDir()
	o := mustOpen(t, src, Options{})
	appendN(t, o, 0, 3)
	o.Close()
	seg := lastSegment(t, src)
	full, _ := os.ReadFile(seg)
	var ends []int // offsets where each record ends
	for off := 0; off < len(full); {
		_, n, err := decodeRecord(full[off:])
		if err != nil {
			t.Fatal(err)
		}
		off += n
		ends = append(ends, off)
	}
	for cut := 0; cut <= len(full); cut++ {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, filepath.Base(seg)), full[:cut], 0o600)
		want := 0
		for _, e := range ends {
			if e <= cut {
				want++
			}
		}
		o := mustOpen(t, dir, Options{})
		if got := o.Stats().Depth; got != int64(want) {
			t.Fatalf("cut at %d: %d records, want %d", cut, got, want)
		}
		if cut%16 == 0 || cut == len(full) { // appending fsyncs: sample it
			appendN(t, o, 100, 1)
			got := drain(t, o, 10)
			if len(got) != want+1 || got[len(got)-1] != ev(100).ID {
				t.Fatalf("cut at %d: after an append got %v", cut, got)
			}
		}
		o.Close()
	}
}
