package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

// The child side of TestAgentSIGKILLedWhileUploading: this test binary
// re-executed as an agent whose "gen" module emits numbered events and
// prints each number once emit has returned (the event is then durable).
const envChild = "MAMORI_AGENT_TEST_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envChild); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

type genModule struct{ from, count int }

func (g *genModule) Name() string                                { return "gen" }
func (g *genModule) Configure(context.Context, ModuleSpec) error { return nil }
func (g *genModule) Status() ModuleStatus                        { return ModuleStatus{Name: "gen"} }
func (g *genModule) Run(ctx context.Context, emit func(event.Event)) error {
	w := bufio.NewWriter(os.Stdout)
	for i := g.from; i < g.from+g.count && ctx.Err() == nil; i++ {
		emit(event.Event{ID: fmt.Sprintf("gen-%08d", i), Kind: event.KindLogAlert, Severity: event.SeverityLow, Message: strconv.Itoa(i)})
		fmt.Fprintln(w, i)
		w.Flush()
	}
	<-ctx.Done()
	return nil
}

func runChild(dir string) int {
	from, _ := strconv.Atoi(os.Getenv("GEN_FROM"))
	count, _ := strconv.Atoi(os.Getenv("GEN_COUNT"))
	a, err := New(Config{DataDir: dir, Modules: map[string]func(Env) Module{"gen": func(Env) Module { return &genModule{from, count} }},
		Host: func() api.HostInfo { return api.HostInfo{Hostname: "child", MachineID: "machine-1"} }, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		HeartbeatWait: 2 * time.Second, StatusInterval: 50 * time.Millisecond}, quiet())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestAgentSIGKILLedWhileUploading kills the agent process with SIGKILL
// while it emits and uploads, restarts it, and checks that every event the
// module had emitted reaches the manager.
func TestAgentSIGKILLedWhileUploading(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	h := newHarness(t)
	h.m.SetPolicy(policy("v1", map[string]api.ModulePolicy{"gen": {Enabled: true}}))
	emitted := map[int]bool{}
	var second *exec.Cmd
	started := make(chan struct{})
	run := func(from, count int, killAfter time.Duration, onStart func(*exec.Cmd)) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"="+h.dir, fmt.Sprint("GEN_FROM=", from), fmt.Sprint("GEN_COUNT=", count))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return
		}
		if onStart != nil {
			onStart(cmd)
		}
		lines := make(chan int, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if n, err := strconv.Atoi(sc.Text()); err == nil {
					lines <- n
				}
			}
			close(lines)
		}()
		timer := time.AfterFunc(killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
		for n := range lines {
			emitted[n] = true
		}
		timer.Stop()
		cmd.Wait()
	}
	run(0, 1_000_000, 1500*time.Millisecond, nil) // killed mid-stream
	if len(emitted) == 0 {
		t.Fatal("the child emitted nothing before it was killed")
	}
	atKill := len(h.m.Events())
	// restart, emitting nothing new; stop it once the queue is drained
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(0, 0, 20*time.Second, func(c *exec.Cmd) { second = c; close(started) })
	}()
	<-started
	eventually(t, "every emitted event at the manager", 15*time.Second, func() bool {
		got := map[string]bool{}
		for _, e := range h.m.Events() {
			got[e.ID] = true
		}
		for n := range emitted {
			if !got[fmt.Sprintf("gen-%08d", n)] {
				return false
			}
		}
		return true
	})
	t.Logf("%d events emitted before SIGKILL, %d at the manager at the kill, %d after the restart", len(emitted), atKill, countKind(h.m.Events(), event.KindLogAlert))
	// The restarted child is not needed any more.
	second.Process.Signal(syscall.SIGTERM)
	<-done
}
