package spine

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager"
	"github.com/mamori-sec/mamori/manager/managertest"
)

// copyDir copies an agent data directory the way a disk image would.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestClonedAgentReenrols runs a copy of an enrolled agent's data
// directory on "another machine" (another machine-id): the manager refuses
// the copied identity, the copy enrols as a computer of its own with the
// kept token, and the original keeps its ID and keeps working.
func TestClonedAgentReenrols(t *testing.T) {
	m, admin := inProcManager(t, "sqlite", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tok, err := m.CreateEnrollmentToken(ctx, "", manager.WithMaxUses(3))
	if err != nil {
		t.Fatal(err)
	}
	host := func(machine string) func() api.HostInfo {
		return func() api.HostInfo { return api.HostInfo{Hostname: "web-1", MachineID: machine, OS: "test"} }
	}
	dirA := t.TempDir()
	hA := host("machine-a")()
	if err := agent.Enroll(ctx, agent.EnrollOptions{ManagerURL: m.URL(), Token: tok, CAPEM: m.CAPEM(), DataDir: dirA, KeepToken: true, Host: &hA}); err != nil {
		t.Fatal(err)
	}
	dirB := t.TempDir()
	copyDir(t, dirA, dirB) // the disk image, taken before the original ever ran

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func(dir string, h func() api.HostInfo) {
		cfg := agentConfig(dir)
		cfg.Host = h
		a, err := agent.New(cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	run(dirA, host("machine-a"))
	hc := managertest.TLSClient(m.CAPEM(), nil)
	hdr := map[string][]string{"Authorization": {"Bearer " + admin}}
	list := func() []api.Computer {
		var cs api.Page[api.Computer]
		if err := managertest.Do(ctx, hc, "GET", m.URL()+"/api/v1/computers", hdr, nil, &cs); err != nil {
			t.Fatal(err)
		}
		return cs.Items
	}
	waitFor := func(what string, ok func([]api.Computer) bool) []api.Computer {
		for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if cs := list(); ok(cs) {
				return cs
			}
		}
		t.Fatalf("timed out waiting for %s: %+v", what, list())
		return nil
	}
	cs := waitFor("the original to heartbeat", func(cs []api.Computer) bool { return len(cs) == 1 && cs[0].AppliedPolicyVersion != "" })
	original := cs[0].ID

	run(dirB, host("machine-b"))
	cs = waitFor("the clone to enrol as a second computer", func(cs []api.Computer) bool { return len(cs) == 2 })
	for _, c := range cs {
		switch c.Host.MachineID {
		case "machine-a":
			if c.ID != original {
				t.Fatalf("original changed identity: %s → %s", original, c.ID)
			}
		case "machine-b":
			if c.ID == original {
				t.Fatal("clone kept the original's identity")
			}
		default:
			t.Fatalf("unexpected computer %+v", c)
		}
	}
	// Both keep working under their own identities: a command to each is
	// delivered over its long-poll and acknowledged.
	for _, c := range cs {
		var cmd api.Command
		if err := managertest.Do(ctx, hc, "POST", m.URL()+"/api/v1/computers/"+c.ID+"/commands", hdr, api.CommandRequest{Type: api.CommandUpdateNow}, &cmd); err != nil {
			t.Fatal(err)
		}
		acked := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !acked; time.Sleep(200 * time.Millisecond) {
			var st api.Page[api.CommandStatus]
			if err := managertest.Do(ctx, hc, "GET", m.URL()+"/api/v1/computers/"+c.ID+"/commands", hdr, nil, &st); err != nil {
				t.Fatal(err)
			}
			acked = len(st.Items) > 0 && st.Items[0].Acked != nil
		}
		if !acked {
			t.Fatalf("computer %s (%s) did not acknowledge a command after the split", c.ID, c.Host.MachineID)
		}
	}
	var log api.Page[api.AuditEntry]
	if err := managertest.Do(ctx, hc, "GET", m.URL()+"/api/v1/audit?limit=1000", hdr, nil, &log); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range log.Items {
		found = found || (e.Action == "computer.clone_detected" && e.ObjectID == original)
	}
	if !found {
		t.Fatal("clone not audited")
	}
}
