package manager

import (
	"context"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/managertest"
)

// Authentication reads the computer on every request: a deactivation
// written straight to the database (as another manager node sharing it
// would, with no notice to this one) refuses the very next request of
// every kind, and reactivation lets the next one through.
func TestDeactivatedRefusedOnNextRequest(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		var cmd api.Command
		e.must(e.admin, "POST", "/api/v1/computers/"+a.ComputerID+"/commands", api.CommandRequest{Type: api.CommandScanNow, Args: map[string]string{"module": "antimalware"}}, &cmd)
		requests := []struct {
			name string
			do   func() error
		}{
			{"heartbeat", func() error { _, err := a.Heartbeat(ctx, api.Heartbeat{}, 0); return err }},
			{"policy", func() error { _, err := a.Policy(ctx); return err }},
			{"upload", func() error { _, err := a.Upload(ctx, managertest.Events(1, "x", 2)); return err }},
			{"command ack", func() error {
				return managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathAgentCommand+cmd.ID+"/ack", nil, api.CommandAck{OK: true}, nil)
			}},
		}
		tenant := e.m.mustComputerTenant(t, a.ComputerID)
		for _, rq := range requests {
			t.Run(rq.name, func(t *testing.T) {
				if err := e.m.store.SetDeactivated(ctx, tenant, a.ComputerID, true); err != nil {
					t.Fatal(err)
				}
				if err := rq.do(); statusOf(err) != 403 {
					t.Fatalf("deactivated: %v, want 403", err)
				}
				if err := e.m.store.SetDeactivated(ctx, tenant, a.ComputerID, false); err != nil {
					t.Fatal(err)
				}
				if err := rq.do(); err != nil {
					t.Fatalf("reactivated: %v", err)
				}
			})
		}
	})
}

// A heartbeat that does not wait learns of its commands from
// authentication's read: a queued command is delivered at once, again
// until acknowledged, and never to another computer.
func TestHeartbeatCommandsWithoutWait(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tok := e.token(e.admin, api.TokenRequest{MaxUses: 2})
		a, b := e.agent(tok, "m1"), e.agent(tok, "m2")
		ep, err := a.Policy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hb := api.Heartbeat{PolicyVersion: ep.Version}
		count := func(ag *managertest.Agent) int {
			t.Helper()
			r, err := ag.Heartbeat(ctx, hb, 0)
			if err != nil {
				t.Fatal(err)
			}
			return len(r.Commands)
		}
		if n := count(a); n != 0 {
			t.Fatalf("%d commands before any was queued", n)
		}
		var cmd api.Command
		e.must(e.admin, "POST", "/api/v1/computers/"+a.ComputerID+"/commands", api.CommandRequest{Type: api.CommandScanNow, Args: map[string]string{"module": "antimalware"}}, &cmd)
		for i := range 2 {
			if n := count(a); n != 1 {
				t.Fatalf("heartbeat %d after queueing: %d commands, want 1", i, n)
			}
		}
		if n := count(b); n != 0 {
			t.Fatalf("other computer got %d commands", n)
		}
		if err := managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathAgentCommand+cmd.ID+"/ack", nil, api.CommandAck{OK: true}, nil); err != nil {
			t.Fatal(err)
		}
		if n := count(a); n != 0 {
			t.Fatalf("%d commands after acknowledging", n)
		}
	})
}

func (m *Manager) mustComputerTenant(t *testing.T, id string) string {
	t.Helper()
	cs, err := m.store.AllComputers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.ID == id {
			return c.TenantID
		}
	}
	t.Fatalf("computer %s not found", id)
	return ""
}

// A command queued by another manager node (straight into the database,
// no wake-up on this one) reaches a long-poll at its next periodic
// re-read, which reads identity and pending commands in one query.
func TestLongPollFindsOtherNodesCommand(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		ep, err := a.Policy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan api.HeartbeatResponse, 1)
		go func() {
			hb, _ := a.Heartbeat(ctx, api.Heartbeat{PolicyVersion: ep.Version}, clonePollInterval+5*time.Second)
			done <- hb
		}()
		time.Sleep(300 * time.Millisecond)
		cmd, err := e.m.store.QueueCommand(ctx, e.m.mustComputerTenant(t, a.ComputerID), a.ComputerID, api.CommandScanNow, map[string]string{"module": "antimalware"})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		hb := <-done
		if len(hb.Commands) != 1 || hb.Commands[0].ID != cmd.ID || time.Since(start) > clonePollInterval+time.Second {
			t.Fatalf("heartbeat commands = %+v after %v", hb.Commands, time.Since(start))
		}
	})
}

// A long-poll with a command already waiting answers at once with it,
// and one without waits for the command queued during the wait.
func TestLongPollCommandBeforeAndDuring(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.agent(e.token(e.admin, api.TokenRequest{}), "m1")
		ep, err := a.Policy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		queue := func() api.Command {
			var cmd api.Command
			e.must(e.admin, "POST", "/api/v1/computers/"+a.ComputerID+"/commands", api.CommandRequest{Type: api.CommandScanNow, Args: map[string]string{"module": "antimalware"}}, &cmd)
			return cmd
		}
		ack := func(id string) {
			if err := managertest.Do(ctx, a.Client, "POST", e.m.URL()+api.PathAgentCommand+id+"/ack", nil, api.CommandAck{OK: true}, nil); err != nil {
				t.Fatal(err)
			}
		}
		before := queue()
		start := time.Now()
		hb, err := a.Heartbeat(ctx, api.Heartbeat{PolicyVersion: ep.Version}, 8*time.Second)
		if err != nil || len(hb.Commands) != 1 || hb.Commands[0].ID != before.ID || time.Since(start) > 2*time.Second {
			t.Fatalf("command queued before: %+v, %v after %v", hb.Commands, err, time.Since(start))
		}
		ack(before.ID)
		done := make(chan api.HeartbeatResponse, 1)
		go func() {
			hb, _ := a.Heartbeat(ctx, api.Heartbeat{PolicyVersion: ep.Version}, 8*time.Second)
			done <- hb
		}()
		time.Sleep(300 * time.Millisecond)
		start = time.Now()
		during := queue()
		hb = <-done
		if len(hb.Commands) != 1 || hb.Commands[0].ID != during.ID || time.Since(start) > 2*time.Second {
			t.Fatalf("command queued during: %+v after %v", hb.Commands, time.Since(start))
		}
	})
}
