package logs

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/logs/source"
)

const genScript = "../../shared/bench/gen_authlog.py"

// generatedAuthLog returns an auth.log with planted attackers and its truth
// file: 300k lines by default, the shared 1M-line bench file with
// MAMORI_LONG=1.
func generatedAuthLog(t *testing.T) (log, truth string) {
	t.Helper()
	if os.Getenv("MAMORI_LONG") == "1" {
		log, truth = "/tmp/benchdata/logs/auth.log", "/tmp/benchdata/meta/authlog-truth.tsv"
		if _, err := os.Stat(log); err == nil {
			return log, truth
		}
	}
	if _, err := exec.LookPath("python3"); err != nil {
		skipOrFail(t, "python3 missing: cannot run the shared auth.log generator")
	}
	if _, err := os.Stat(genScript); err != nil {
		skipOrFail(t, "shared bench generator not found: "+err.Error())
	}
	dir := t.TempDir()
	log, truth = filepath.Join(dir, "auth.log"), filepath.Join(dir, "truth.tsv")
	n := "300000"
	if os.Getenv("MAMORI_LONG") == "1" {
		n = "1000000"
	}
	if out, err := exec.Command("python3", genScript, log, truth, "20241125", n).CombinedOutput(); err != nil {
		t.Fatalf("generating auth.log: %v: %s", err, out)
	}
	return log, truth
}

func readTruth(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pos := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Scan()
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) == 5 && c[4] == "1" {
			pos[c[0]] = true
		}
	}
	return pos
}

func alertedIPs(t *testing.T, log string) (map[string]bool, int64) {
	t.Helper()
	set, err := LoadRules(nil, false, true)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(log)
	got := map[string]bool{}
	e := New(context.Background(), Config{Rules: set, Location: time.UTC, Ref: st.ModTime()}, func(ev event.Event) {
		if ev.Src != nil && ev.Src.IP != "" {
			got[ev.Src.IP] = true
		}
	})
	rc, err := source.OpenFile(log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	source.ReadAll(rc, 0, func(l string) { e.Line(l, log) })
	return got, e.Stats().Lines
}

func diff(a, b map[string]bool) (onlyA, onlyB []string) {
	for k := range a {
		if !b[k] {
			onlyA = append(onlyA, k)
		}
	}
	for k := range b {
		if !a[k] {
			onlyB = append(onlyB, k)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	return
}

// TestGeneratedAuthLogTruthAndFail2ban: the alerted source IPs equal the
// planted truth (≥ 6 failed attempts in 600 s) exactly, and equal the IPs
// fail2ban bans with its stock sshd filter and Debian's jail defaults
// (fail2ban-regex -o row replayed through fail2ban's own FailManager).
func TestGeneratedAuthLogTruthAndFail2ban(t *testing.T) {
	log, truthFile := generatedAuthLog(t)
	truth := readTruth(t, truthFile)
	start := time.Now()
	got, lines := alertedIPs(t, log)
	el := time.Since(start)
	fn, fp := diff(truth, got)
	tp := len(truth) - len(fn)
	t.Logf("%d lines in %v: alerted %d IPs; truth %d; precision %.3f recall %.3f", lines, el.Round(time.Millisecond), len(got), len(truth),
		float64(tp)/float64(max(len(got), 1)), float64(tp)/float64(max(len(truth), 1)))
	if len(fn) > 0 || len(fp) > 0 || len(truth) == 0 {
		t.Fatalf("missed %v, extra %v", fn, fp)
	}

	if _, err := exec.LookPath("fail2ban-regex"); err != nil {
		skipOrFail(t, "fail2ban-regex not installed (Debian package fail2ban): differential part skipped")
	}
	rows := filepath.Join(t.TempDir(), "rows")
	out, err := os.Create(rows)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("fail2ban-regex", "-o", "row", log, "sshd")
	cmd.Stdout = out
	f2bStart := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("fail2ban-regex: %v", err)
	}
	out.Close()
	f2bTime := time.Since(f2bStart)
	banned, err := exec.Command("python3", "../bench/logs/f2b_replay.py", rows, "5", "600").Output()
	if err != nil {
		t.Fatalf("replaying fail2ban rows: %v", err)
	}
	f2b := map[string]bool{}
	for _, ip := range strings.Fields(string(banned)) {
		f2b[ip] = true
	}
	onlyF2B, onlyUs := diff(f2b, got)
	t.Logf("fail2ban-regex took %v (mamori %v): fail2ban bans %d IPs, mamori alerts %d; only fail2ban %v, only mamori %v",
		f2bTime.Round(time.Millisecond), el.Round(time.Millisecond), len(f2b), len(got), onlyF2B, onlyUs)
	if len(onlyF2B) > 0 || len(onlyUs) > 0 {
		t.Errorf("mamori and fail2ban disagree")
	}
}
