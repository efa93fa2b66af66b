package watch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// writeThen is the child of TestWhoDidItExecExit: it changes one file and
// at once executes another program or exits, racing the watcher's lookup
// of who it is.
func writeThen(path, then string) {
	os.WriteFile(path, []byte("changed by a short-lived child\n"), 0o644)
	if then == "exec" {
		sleep, _ := exec.LookPath("sleep")
		syscall.Exec(sleep, []string{"sleep", "0.3"}, os.Environ())
	}
	os.Exit(0)
}

// TestWhoDidItExecExit: a process that writes and then immediately
// executes another program or exits is either named correctly (the test
// binary, before its exec) or reported unknown with the reason, never as
// the program it executed afterwards or as some other process.
func TestWhoDidItExecExit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify filesystem marks need root")
	}
	const n = 24
	root, w := setup(t, n, ModeFanotify)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Change, n*2)
	go w.Run(ctx, func(c Change) { got <- c })
	time.Sleep(50 * time.Millisecond)
	self, _ := os.Executable()
	pids := map[string]int{}
	thens := map[string]string{}
	for i := 0; i < n; i++ {
		logical := fmt.Sprintf("/w/d%02d/f%04d", i%10, i)
		then := []string{"exec", "exit"}[i%2]
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "MAMORI_WATCH_WRITE_THEN="+filepath.Join(root, logical), "MAMORI_WATCH_THEN="+then)
		must(t, cmd.Start())
		pids[logical], thens[logical] = cmd.Process.Pid, then
		go cmd.Wait() // reaped at once: its pid is free to be reused
	}
	counts := map[string]int{}
	deadline := time.After(15 * time.Second)
	for seen := 0; seen < n; {
		select {
		case c := <-got:
			pid, ok := pids[c.Path]
			if !ok {
				t.Errorf("unexpected change %s %s", c.What, c.Path)
				continue
			}
			seen++
			if len(c.Actors) == 0 {
				t.Errorf("%s: no actor at all", c.Path)
				continue
			}
			a := c.Actors[len(c.Actors)-1]
			switch {
			case a.PID != pid:
				t.Errorf("%s: pid %d, want %d", c.Path, a.PID, pid)
			case a.Unknown != "":
				if a.Exe != "" || a.UID != -1 {
					t.Errorf("%s: unknown (%s) but exe %q uid %d given", c.Path, a.Unknown, a.Exe, a.UID)
				}
				counts[thens[c.Path]+": unknown: "+a.Unknown]++
			case a.Exe != self:
				t.Errorf("%s (child then %s): attributed to %s, want %s or unknown", c.Path, thens[c.Path], a.Exe, self)
			default:
				counts[thens[c.Path]+": identified"]++
			}
			ev := c.Event("h")
			if a.Unknown != "" && (ev.Process == nil || ev.Process.Exe != "unknown" || ev.Fields["actor_unknown"] != a.Unknown) {
				t.Errorf("%s: event does not say unknown with the reason: %+v %v", c.Path, ev.Process, ev.Fields)
			}
		case <-deadline:
			t.Fatalf("only %d of %d changes reported", seen, n)
		}
	}
	for k, v := range counts {
		t.Logf("%-110s %d", k, v)
	}
}
