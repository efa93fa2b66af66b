package spine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager"
	"github.com/mamori-sec/mamori/manager/managertest"
	"github.com/mamori-sec/mamori/manager/pgtest"
	"github.com/mamori-sec/mamori/manager/store"
)

func dbFor(t *testing.T, dialect string) string {
	if dialect == store.Postgres {
		return pgtest.DSN(t)
	}
	return ""
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// need skips (or fails under CI) when a precondition is missing.
func need(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("whole-system test needs %s", why)
	}
	t.Skipf("needs %s", why)
}

// inProcManager runs a manager in this process.
func inProcManager(t *testing.T, dialect, listen string, hosts ...string) (*manager.Manager, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := manager.New(ctx, manager.Config{DataDir: t.TempDir(), DB: dbFor(t, dialect), Listen: listen, Hostnames: hosts, JobInterval: time.Hour},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	key, _, err := m.BootstrapAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m, key
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mamoriBin builds ./cmd/mamori once per test binary.
func mamoriBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mamori-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mamori")
		out, err := exec.Command("go", "build", "-o", binPath, "../../../cmd/mamori").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// procManager is `mamori manager run` as a subprocess, restartable on the
// same data directory, database and port.
type procManager struct {
	t                  *testing.T
	bin, data, db, url string
	listen             string
	cmd                *exec.Cmd
	log                *os.File
}

func newProcManager(t *testing.T, dialect string) *procManager {
	pm := &procManager{t: t, bin: mamoriBin(t), data: t.TempDir(), db: dbFor(t, dialect)}
	port := freePort(t)
	pm.listen = fmt.Sprintf("127.0.0.1:%d", port)
	pm.url = "https://" + pm.listen
	var err error
	pm.log, err = os.Create(filepath.Join(pm.data, "..", "manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pm.stop(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(pm.log.Name())
			t.Logf("manager log:\n%s", lastLines(string(b), 40))
		}
		pm.log.Close()
	})
	pm.start()
	return pm
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func (pm *procManager) start() {
	pm.t.Helper()
	pm.cmd = exec.Command(pm.bin, "manager", "run", "--data-dir", pm.data, "--db", pm.db, "--listen", pm.listen)
	pm.cmd.Stdout, pm.cmd.Stderr = pm.log, pm.log
	if err := pm.cmd.Start(); err != nil {
		pm.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ca, err := os.ReadFile(filepath.Join(pm.data, "ca.crt")); err == nil {
			resp, err := managertest.TLSClient(ca, nil).Get(pm.url + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	pm.t.Fatal("manager subprocess did not come up in 60s")
}

func (pm *procManager) stop(sig syscall.Signal) {
	if pm.cmd == nil || pm.cmd.Process == nil {
		return
	}
	_ = pm.cmd.Process.Signal(sig)
	_ = pm.cmd.Wait()
	pm.cmd = nil
}

func (pm *procManager) ca() []byte {
	b, err := os.ReadFile(filepath.Join(pm.data, "ca.crt"))
	if err != nil {
		pm.t.Fatal(err)
	}
	return b
}

// openStore opens the subprocess manager's database next to it.
func (pm *procManager) openStore() *store.Store {
	st, err := store.Open(context.Background(), pm.db, pm.data)
	if err != nil {
		pm.t.Fatal(err)
	}
	pm.t.Cleanup(func() { st.Close() })
	return st
}

// genPolicy creates a policy that runs the generator and a token for it.
func genPolicy(t *testing.T, st *store.Store, run string, count, perSecond int) string {
	t.Helper()
	ctx := context.Background()
	tn, err := manager.EnsureTenant(ctx, st, manager.DefaultTenant, nil)
	if err != nil {
		t.Fatal(err)
	}
	on := true
	p, err := st.PutPolicy(ctx, tn.ID, api.Policy{Name: "gen-" + run, HeartbeatSeconds: 10, Modules: api.PolicyModules{
		genName: {Enabled: &on, Settings: map[string]json.RawMessage{"run": mustJSON(run), "count": mustJSON(count), "per_second": mustJSON(perSecond)}}}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.CreateToken(ctx, tn.ID, api.TokenRequest{PolicyID: p.ID, MaxUses: 5}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// countRun counts the generated events of a run: all rows, and distinct IDs.
func countRun(t *testing.T, st *store.Store, run string) (rows, distinct int) {
	t.Helper()
	err := st.DB().QueryRowContext(context.Background(), `SELECT COUNT(*), COUNT(DISTINCT id) FROM events WHERE module = $1 AND id LIKE $2`, genName, run+"-%").Scan(&rows, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

// waitCount waits until the store holds want events of the run and checks
// they are all distinct and numbered 0..want-1.
func waitCount(t *testing.T, st *store.Store, run string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	rows, distinct := 0, 0
	for time.Now().Before(deadline) {
		rows, distinct = countRun(t, st, run)
		if rows >= want {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if rows != want || distinct != want {
		t.Fatalf("store holds %d events (%d distinct) of run %s, want exactly %d", rows, distinct, run, want)
	}
	var lo, hi string
	st.DB().QueryRowContext(context.Background(), `SELECT MIN(id), MAX(id) FROM events WHERE module = $1 AND id LIKE $2`, genName, run+"-%").Scan(&lo, &hi)
	if lo != fmt.Sprintf("%s-%06d", run, 0) || hi != fmt.Sprintf("%s-%06d", run, want-1) {
		t.Fatalf("ids run %s..%s, want 0..%d", lo, hi, want-1)
	}
}

// agentProc is this test binary re-executed as an agent, optionally in a
// network namespace.
type agentProc struct {
	t      *testing.T
	env    []string
	netns  string
	cmd    *exec.Cmd
	logf   *os.File
	dataDi string
}

func newAgentProc(t *testing.T, url string, ca []byte, token, netns string) *agentProc {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	os.WriteFile(caFile, ca, 0o600)
	ap := &agentProc{t: t, netns: netns, dataDi: filepath.Join(dir, "agent"),
		env: append(os.Environ(), envRole+"=agent", envManager+"="+url, envToken+"="+token, envCA+"="+caFile, envData+"="+filepath.Join(dir, "agent"))}
	var err error
	ap.logf, err = os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ap.stop(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(ap.logf.Name())
			t.Logf("agent log:\n%s", lastLines(string(b), 40))
		}
		ap.logf.Close()
	})
	ap.start()
	return ap
}

func (ap *agentProc) start() {
	args := []string{os.Args[0], "-test.run=^$"}
	if ap.netns != "" {
		args = append([]string{"ip", "netns", "exec", ap.netns}, args...)
	}
	ap.cmd = exec.Command(args[0], args[1:]...)
	ap.cmd.Env = ap.env
	ap.cmd.Stdout, ap.cmd.Stderr = ap.logf, ap.logf
	if err := ap.cmd.Start(); err != nil {
		ap.t.Fatal(err)
	}
}

func (ap *agentProc) stop(sig syscall.Signal) {
	if ap.cmd == nil || ap.cmd.Process == nil {
		return
	}
	_ = ap.cmd.Process.Signal(sig)
	_ = ap.cmd.Wait()
	ap.cmd = nil
}

// progress reads how many events the generator has emitted durably.
func (ap *agentProc) progress() int {
	matches, _ := filepath.Glob(filepath.Join(ap.dataDi, "*", "*", "progress"))
	more, _ := filepath.Glob(filepath.Join(ap.dataDi, "*", "progress"))
	for _, f := range append(matches, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var run string
		var n int
		if _, err := fmt.Sscanf(string(b), "%s %d", &run, &n); err == nil {
			return n
		}
	}
	return 0
}

// netns makes a network namespace joined to this one by a veth pair and
// returns its name, the host-side address and the namespace-side address.
func netns(t *testing.T) (string, string) {
	t.Helper()
	_, err := exec.LookPath("ip")
	need(t, err == nil && os.Geteuid() == 0, "root and iproute2 (ip) for a network namespace")
	id := randHex(3)
	ns, hostIf, nsIf := "mamori-e2e-"+id, "me2h"+id, "me2n"+id
	sub := fmt.Sprintf("10.%d.%d", 200+int(id[0])%50, int(id[1])*7%250)
	hostIP, nsIP := sub+".1", sub+".2"
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	run("ip", "link", "set", nsIf, "netns", ns)
	run("ip", "addr", "add", hostIP+"/30", "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	run("ip", "netns", "exec", ns, "ip", "addr", "add", nsIP+"/30", "dev", nsIf)
	run("ip", "netns", "exec", ns, "ip", "link", "set", nsIf, "up")
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	return ns, hostIP
}
