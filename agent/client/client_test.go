package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent/testmanager"
	"github.com/mamori-sec/mamori/api"
)

func newManager(t *testing.T) *testmanager.Server {
	t.Helper()
	m, err := testmanager.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func host(mid string) api.HostInfo { return api.HostInfo{Hostname: "web-1", MachineID: mid} }

func enrolled(t *testing.T, m *testmanager.Server) (*Client, string) {
	t.Helper()
	m.AddToken("tok", 10)
	dir := t.TempDir()
	if _, err := Enroll(context.Background(), EnrollOptions{ManagerURL: m.URL, Token: "tok", CAPEM: m.CAPEM, DataDir: dir, Host: host("m1")}); err != nil {
		t.Fatalf("Enroll = %v", err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	t.Cleanup(c.Close)
	return c, dir
}

func TestEnrollStoresIdentity(t *testing.T) {
	m := newManager(t)
	c, dir := enrolled(t, m)
	id := c.Identity()
	if id.ComputerID == "" || len(id.RulePackKeys) != 1 {
		t.Fatalf("Identity = %+v", id)
	}
	for _, f := range []string{IdentityFile, ClientPEM, CAFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, TokenFile)); err == nil {
		t.Error("token stored although KeepToken was false")
	}
}

func TestEnrollTrust(t *testing.T) {
	m := newManager(t)
	other := newManager(t)
	goodPin := SPKIPin(m.CACert)
	for _, tc := range []struct {
		name    string
		opts    EnrollOptions
		wantErr string
	}{
		{"pin", EnrollOptions{CAPin: goodPin}, ""},
		{"pin upper case", EnrollOptions{CAPin: strings.ToUpper(goodPin[7:])}, "want sha256:"},
		{"wrong pin", EnrollOptions{CAPin: SPKIPin(other.CACert)}, "matches CA pin"},
		{"wrong CA", EnrollOptions{CAPEM: other.CAPEM}, "certificate signed by unknown authority"},
		{"no trust", EnrollOptions{}, "trust on first use"},
		{"both", EnrollOptions{CAPEM: m.CAPEM, CAPin: goodPin}, "not both"},
		{"http url", EnrollOptions{CAPEM: m.CAPEM, ManagerURL: strings.Replace(m.URL, "https", "http", 1)}, "want https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.AddToken("tok-"+tc.name, 1)
			o := tc.opts
			if o.ManagerURL == "" {
				o.ManagerURL = m.URL
			}
			o.Token, o.DataDir, o.Host = "tok-"+tc.name, t.TempDir(), host("m1")
			_, err := Enroll(context.Background(), o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Enroll = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Enroll = %v, want error containing %q", err, tc.wantErr)
			}
			if _, err := LoadIdentity(o.DataDir); !errors.Is(err, ErrNotEnrolled) {
				t.Errorf("identity written after a failed enrolment: %v", err)
			}
		})
	}
}

func TestEnrollBadToken(t *testing.T) {
	m := newManager(t)
	_, err := Enroll(context.Background(), EnrollOptions{ManagerURL: m.URL, Token: "nope", CAPEM: m.CAPEM, DataDir: t.TempDir()})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 401 || se.Field != "token" || !Permanent(err) {
		t.Fatalf("Enroll with an unknown token = %v, want a permanent 401 naming field token", err)
	}
}

func TestHeartbeatPolicyEventsCommands(t *testing.T) {
	m := newManager(t)
	c, _ := enrolled(t, m)
	ctx := context.Background()
	m.SetPolicy(api.EffectivePolicy{Version: "v7", HeartbeatSeconds: 30, Modules: map[string]api.ModulePolicy{}})
	hr, err := c.Heartbeat(ctx, api.Heartbeat{Host: host("m1"), AgentTime: time.Now(), PolicyVersion: "v7"}, 0)
	if err != nil || hr.PolicyVersion != "v7" || hr.HeartbeatSeconds != 30 {
		t.Fatalf("Heartbeat = %+v, %v", hr, err)
	}
	p, err := c.Policy(ctx, "")
	if err != nil || p.Version != "v7" {
		t.Fatalf("Policy = %+v, %v", p, err)
	}
	if _, err := c.Policy(ctx, "v7"); !errors.Is(err, ErrNotModified) {
		t.Fatalf("Policy(etag v7) = %v, want ErrNotModified", err)
	}
	for _, gz := range []bool{false, true} {
		c.GzipAbove = -1 // never
		if gz {
			c.GzipAbove = 1 // always
		}
		evs := []json.RawMessage{
			json.RawMessage(fmt.Sprintf(`{"id":"e1-%v","time":"2026-01-01T00:00:00Z","kind":"log.alert","severity":"low","message":"x"}`, gz)),
			json.RawMessage(fmt.Sprintf(`{"id":"e2-%v","time":"2026-01-01T00:00:00Z","kind":"log.alert","severity":"low","message":"y"}`, gz)),
		}
		res, err := c.Upload(ctx, evs)
		if err != nil || res.Accepted != 2 {
			t.Fatalf("Upload(gzip=%v) = %+v, %v", gz, res, err)
		}
		res, err = c.Upload(ctx, evs)
		if err != nil || res.Duplicates != 2 {
			t.Fatalf("Upload again = %+v, %v; want 2 duplicates", res, err)
		}
	}
	// long poll: a queued command ends the wait early
	id := c.Identity().ComputerID
	go func() {
		time.Sleep(200 * time.Millisecond)
		m.Queue(id, api.Command{ID: "cmd1", Type: api.CommandScanNow})
	}()
	start := time.Now()
	hr, err = c.Heartbeat(ctx, api.Heartbeat{Host: host("m1"), PolicyVersion: "v7"}, 20*time.Second)
	if err != nil || len(hr.Commands) != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("long-poll Heartbeat = %+v, %v after %v", hr, err, time.Since(start))
	}
	if err := c.AckCommand(ctx, "cmd1", api.CommandAck{OK: true}); err != nil {
		t.Fatalf("AckCommand = %v", err)
	}
	if comp, _ := m.Computer(id); !comp.Acks["cmd1"].OK {
		t.Fatalf("manager has no ack for cmd1: %+v", comp.Acks)
	}
}

func TestCloneIsReported(t *testing.T) {
	m := newManager(t)
	c, _ := enrolled(t, m)
	ctx := context.Background()
	if _, err := c.Heartbeat(ctx, api.Heartbeat{Host: host("m1")}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Heartbeat(ctx, api.Heartbeat{Host: host("m2-cloned")}, 0); !errors.Is(err, ErrClone) {
		t.Fatalf("Heartbeat from another machine-id = %v, want ErrClone", err)
	}
}

func TestRenewSwapsCertificate(t *testing.T) {
	m := newManager(t)
	c, dir := enrolled(t, m)
	ctx := context.Background()
	before, _ := os.ReadFile(filepath.Join(dir, ClientPEM))
	if err := c.Renew(ctx); err != nil {
		t.Fatalf("Renew = %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, ClientPEM))
	if string(before) == string(after) {
		t.Fatal("client.pem unchanged after Renew")
	}
	if _, err := c.Heartbeat(ctx, api.Heartbeat{Host: host("m1")}, 0); err != nil {
		t.Fatalf("Heartbeat with the renewed certificate = %v", err)
	}
	c2, err := Load(dir)
	if err != nil {
		t.Fatalf("Load after Renew = %v", err)
	}
	defer c2.Close()
	if _, err := c2.Heartbeat(ctx, api.Heartbeat{Host: host("m1")}, 0); err != nil {
		t.Fatalf("Heartbeat after reload = %v", err)
	}
}

func TestDeactivatedIsPermanent(t *testing.T) {
	m := newManager(t)
	c, _ := enrolled(t, m)
	m.Deactivate(c.Identity().ComputerID)
	_, err := c.Heartbeat(context.Background(), api.Heartbeat{Host: host("m1")}, 0)
	if err == nil || !Permanent(err) {
		t.Fatalf("Heartbeat of a deactivated computer = %v, want a permanent error", err)
	}
}
