package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector counts lines and catches doubles.
type collector struct {
	mu   sync.Mutex
	seen map[string]int
	n    int
}

func newCollector() *collector { return &collector{seen: map[string]int{}} }

func (c *collector) add(line, _ string) {
	c.mu.Lock()
	c.seen[line]++
	c.n++
	c.mu.Unlock()
}

func (c *collector) check(t *testing.T, want int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	doubled := 0
	for _, k := range c.seen {
		if k > 1 {
			doubled++
		}
	}
	t.Logf("lines delivered %d (distinct %d), written %d, doubled %d", c.n, len(c.seen), want, doubled)
	if len(c.seen) != want || c.n != want {
		for i := 0; i < want; i++ {
			if c.seen[fmt.Sprintf("line %d", i)] == 0 {
				t.Errorf("first lost line: line %d", i)
				break
			}
		}
		t.Fatalf("delivered %d lines (%d distinct), want %d exactly once", c.n, len(c.seen), want)
	}
}

func appendLines(t *testing.T, p string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func poll(t *testing.T, tl *Tailer, c *collector) {
	t.Helper()
	if err := tl.Poll(c.add); err != nil {
		t.Fatal(err)
	}
}

func TestTailRenameRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "auth.log")
	appendLines(t, p, 0, 100)
	pos, _ := LoadPositions(filepath.Join(dir, "pos.json"))
	tl := NewTailer(TailConfig{Paths: []string{p}, FromStart: true}, pos)
	c := newCollector()
	poll(t, tl, c)
	appendLines(t, p, 100, 150)
	// The tail of the old generation is written just before the rename
	// and read through the open descriptor.
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, p, 150, 200)
	poll(t, tl, c)
	poll(t, tl, c)
	c.check(t, 200)
}

func TestTailCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, 0, 100)
	pos, _ := LoadPositions("")
	tl := NewTailer(TailConfig{Paths: []string{p}, FromStart: true}, pos)
	c := newCollector()
	poll(t, tl, c)
	appendLines(t, p, 100, 130) // not yet read when logrotate copies
	b, _ := os.ReadFile(p)
	os.WriteFile(p+".1", b, 0o644)
	os.Truncate(p, 0)
	appendLines(t, p, 130, 140)
	poll(t, tl, c)
	c.check(t, 140)
}

func TestTailRestartMidFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	posFile := filepath.Join(dir, "pos.json")
	appendLines(t, p, 0, 1000)
	c := newCollector()
	for round := 0; round < 5; round++ {
		pos, err := LoadPositions(posFile)
		if err != nil {
			t.Fatal(err)
		}
		tl := NewTailer(TailConfig{Paths: []string{p}, FromStart: true, Poll: 5 * time.Millisecond}, pos)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- tl.Run(ctx, c.add) }()
		appendLines(t, p, 1000+round*200, 1000+(round+1)*200)
		time.Sleep(30 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// Written while stopped: must be read after the restart.
		appendLines(t, p, 2000+round*100, 2000+(round+1)*100)
	}
	pos, _ := LoadPositions(posFile)
	tl := NewTailer(TailConfig{Paths: []string{p}}, pos)
	poll(t, tl, c)
	c.check(t, 2500)
}

func TestTailRotatedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "auth.log")
	posFile := filepath.Join(dir, "pos.json")
	appendLines(t, p, 0, 50)
	pos, _ := LoadPositions(posFile)
	tl := NewTailer(TailConfig{Paths: []string{p}, FromStart: true}, pos)
	c := newCollector()
	poll(t, tl, c)
	appendLines(t, p, 50, 60)
	os.Rename(p, p+".1")
	appendLines(t, p, 60, 80)
	pos2, _ := LoadPositions(posFile)
	tl2 := NewTailer(TailConfig{Paths: []string{p}}, pos2)
	poll(t, tl2, c)
	c.check(t, 80)
}

func TestTailRapidRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "busy.log")
	os.WriteFile(p, nil, 0o644)
	pos, _ := LoadPositions("")
	tl := NewTailer(TailConfig{Paths: []string{p}, FromStart: true, Poll: 2 * time.Millisecond}, pos)
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- tl.Run(ctx, c.add) }()
	const total, per = 20000, 1000
	for i := 0; i < total; i += 50 {
		appendLines(t, p, i, i+50)
		if (i+50)%per == 0 {
			// rename rotation as logrotate does it (keeping 9), so
			// several generations can sit next to the live file.
			for k := 8; k >= 1; k-- {
				os.Rename(fmt.Sprintf("%s.%d", p, k), fmt.Sprintf("%s.%d", p, k+1))
			}
			os.Rename(p, p+".1")
			os.WriteFile(p, nil, 0o644)
			time.Sleep(3 * time.Millisecond)
		}
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	c.check(t, total)
}

func TestTailGlobLateFilesAndDeletion(t *testing.T) {
	dir := t.TempDir()
	pos, _ := LoadPositions("")
	tl := NewTailer(TailConfig{Paths: []string{filepath.Join(dir, "*.log")}}, pos)
	c := newCollector()
	poll(t, tl, c) // nothing yet
	a := filepath.Join(dir, "a.log")
	appendLines(t, a, 0, 10) // appears later: read from the start
	poll(t, tl, c)
	b := filepath.Join(dir, "b.log")
	appendLines(t, b, 10, 20)
	appendLines(t, a, 20, 25)
	// Deleted while being read: what was written before is still read
	// through the open descriptor.
	f, _ := os.OpenFile(a, os.O_WRONLY|os.O_APPEND, 0)
	os.Remove(a)
	fmt.Fprintf(f, "line 25\n")
	f.Close()
	poll(t, tl, c)
	poll(t, tl, c)
	c.check(t, 26)
}

func TestLongLinesBounded(t *testing.T) {
	in := "short\n" + strings.Repeat("x", 3<<20) + "\nafter\nno-newline"
	var got []string
	n, err := ReadAll(strings.NewReader(in), 1024, func(l string) { got = append(got, l) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0] != "short" || len(got[1]) != 1024 || got[2] != "after" || got[3] != "no-newline" || n != 1 {
		t.Fatalf("ReadAll = %d lines (%d truncated), lens %v", len(got), n, lens(got))
	}
}

func lens(s []string) []int {
	var out []int
	for _, x := range s {
		out = append(out, len(x))
	}
	return out
}

func TestGzipRotated(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "auth.log.2.gz")
	writeGzip(t, p, "line 0\nline 1\n")
	rc, err := OpenFile(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c := newCollector()
	ReadAll(rc, 0, func(l string) { c.add(l, p) })
	c.check(t, 2)
}

// TestTailCopyTruncateRefilled: after the truncation the writer already
// wrote more than we had read before the next poll; the changed first
// bytes give the truncation away.
func TestTailCopyTruncateRefilled(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, 0, 10)
	pos, _ := LoadPositions("")
	tl := NewTailer(TailConfig{Paths: []string{p}, FromStart: true}, pos)
	c := newCollector()
	poll(t, tl, c)
	appendLines(t, p, 10, 15)
	b, _ := os.ReadFile(p)
	os.WriteFile(p+".1", b, 0o644)
	os.Truncate(p, 0)
	appendLines(t, p, 15, 100)
	poll(t, tl, c)
	c.check(t, 100)
}

// TestReadBlocksEqualsReadAll: same lines, same truncation, whatever the
// read sizes.
func TestReadBlocksEqualsReadAll(t *testing.T) {
	inputs := []string{
		"", "a", "a\n", "\n\n", "a\r\nb\nc", strings.Repeat("x", 5000) + "\nshort\n" + strings.Repeat("y", 3000),
		"short\n" + strings.Repeat("A", 3<<20) + "\nafter\nno-newline",
	}
	for i, in := range inputs {
		var want, got []string
		n1, _ := ReadAll(strings.NewReader(in), 1024, func(l string) { want = append(want, l) })
		n2, err := ReadBlocks(context.Background(), iotestOneByte(in, i), 1024, func(l string) { got = append(got, l) })
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(lens(want)) != fmt.Sprint(lens(got)) || strings.Join(want, "|") != strings.Join(got, "|") || n1 != n2 {
			t.Errorf("input %d: ReadBlocks %v (%d truncated), ReadAll %v (%d)", i, lens(got), n2, lens(want), n1)
		}
	}
}
