package budget

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// TestBusyLoopStaysUnderCap spins a loop that calls Throttle, as a scanner
// does between files, and checks the process used about the capped share
// of one core. The machine may be busy with other work; that only lowers
// our usage, so the bound is one-sided.
func TestBusyLoopStaysUnderCap(t *testing.T) {
	const pct = 25
	th := New(pct, false)
	ctx := context.Background()
	start, cpu0 := time.Now(), ProcessCPU()
	x := 0
	for time.Since(start) < 3*time.Second {
		for i := 0; i < 20000; i++ {
			x += i * i
		}
		if err := th.Throttle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_ = x
	used := ProcessCPU() - cpu0
	wall := time.Since(start)
	share := float64(used) / float64(wall) * 100
	t.Logf("cap %d%%: used %v CPU in %v wall = %.1f%%, slept %v", pct, used, wall, share, th.Slept())
	if share > pct*1.5 {
		t.Fatalf("CPU share %.1f%%, want ≤ about %d%%", share, pct)
	}
	if th.Slept() == 0 {
		t.Fatal("Throttle never slept for a busy loop")
	}
}

func TestNoCapReturnsAtOnce(t *testing.T) {
	th := New(0, false)
	start := time.Now()
	for i := 0; i < 100000; i++ {
		th.Throttle(context.Background())
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100k uncapped Throttle calls took %v", d)
	}
}

func TestThrottleHonoursContext(t *testing.T) {
	th := New(1, false)
	th.processTime = func() time.Duration { return time.Hour } // far over budget
	th.Set(1, false)
	th.processTime = func() time.Duration { return 2 * time.Hour }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := th.Throttle(ctx); err == nil {
		t.Fatal("Throttle over budget with a cancelled context returned nil")
	}
}

func TestIdleIOOnlyForScanningThread(t *testing.T) {
	if IOPrioClass(0) < 0 {
		t.Skip("ioprio_get not permitted here")
	}
	th := New(0, true)
	got := make(chan int)
	go func() {
		th.Throttle(context.Background())
		got <- IOPrioClass(0)
	}()
	if c := <-got; c != ioprioClassIdle {
		t.Fatalf("scanning goroutine's I/O class = %d, want idle (%d)", c, ioprioClassIdle)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if c := IOPrioClass(0); c == ioprioClassIdle {
		t.Fatalf("test goroutine's thread is idle class too")
	}
}

// TestOtherWorkDoesNotCount burns CPU in a goroutine that never calls
// Throttle (another module) while a throttled loop runs: the loop's
// budget is its own, so it is not starved.
func TestOtherWorkDoesNotCount(t *testing.T) {
	th := New(50, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		x := 0
		for ctx.Err() == nil {
			x++
		}
	}()
	start := time.Now()
	done := make(chan time.Duration)
	go func() {
		// light work: far under 50 % of a core on its own
		for i := 0; i < 200; i++ {
			th.Throttle(ctx)
			time.Sleep(time.Millisecond)
		}
		done <- th.Slept()
	}()
	slept := <-done
	if slept > 100*time.Millisecond {
		t.Fatalf("light throttled loop slept %v in %v because another goroutine was busy", slept, time.Since(start))
	}
}
