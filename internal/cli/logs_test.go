package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mamori-sec/mamori/event"
)

func runLogs(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"logs"}, args...))
	err := root.Execute()
	return out.String(), errb.String(), err
}

func TestLogsAnalyzeJSONAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 6; i++ {
		b.WriteString("Nov 25 10:00:0" + string(rune('0'+i)) + " web1 sshd[4415]: Failed password for trend from 10.3.98.76 port 4415 ssh2\n")
	}
	plain := filepath.Join(dir, "auth.log")
	os.WriteFile(plain, []byte(b.String()), 0o644)
	gz := filepath.Join(dir, "auth.log.2.gz")
	f, _ := os.Create(gz)
	zw := gzip.NewWriter(f)
	zw.Write([]byte(b.String()))
	zw.Close()
	f.Close()
	for _, p := range []string{plain, gz} {
		out, stderr, err := runLogs(t, "analyze", "--json", p)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != 1 {
			t.Fatalf("analyze %s: err = %v, want exit 1 (alerts found); stderr %s", p, err, stderr)
		}
		var ev event.Event
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &ev); err != nil {
			t.Fatalf("output is not one JSON event: %v\n%s", err, out)
		}
		if ev.Kind != event.KindLogAlert || ev.Src.IP != "10.3.98.76" || ev.Rule.Author == "" || len(ev.Evidence) != 6 {
			t.Errorf("event = %+v", ev)
		}
		if !strings.Contains(stderr, "6 lines") {
			t.Errorf("summary missing: %s", stderr)
		}
	}
	clean := filepath.Join(dir, "clean.log")
	os.WriteFile(clean, []byte("Nov 25 10:00:00 h CRON[1]: (root) CMD (true)\n"), 0o644)
	if _, _, err := runLogs(t, "analyze", clean); err != nil {
		t.Errorf("clean log: %v, want exit 0", err)
	}
	if _, _, err := runLogs(t, "analyze", filepath.Join(dir, "missing.log")); err == nil {
		t.Errorf("missing file: no error")
	}
}

func TestLogsRulesReportsSkipped(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yml"), []byte("title: bad\nid: bad-1\nlogsource: {product: linux}\ndetection:\n  s: {a|nosuchmod: 1}\n  condition: s\n"), 0o644)
	out, _, err := runLogs(t, "rules", "--rules", dir, "--list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 skipped") || !strings.Contains(out, "bad.yml") || !strings.Contains(out, `unknown modifier "nosuchmod"`) {
		t.Errorf("rules output:\n%s", out)
	}
	if _, _, err := runLogs(t, "rules", "--rules", dir, "--strict"); err == nil {
		t.Errorf("--strict with a bad rule succeeded")
	}
}

func TestLogsWatchNeedsASource(t *testing.T) {
	if _, _, err := runLogs(t, "watch"); err == nil {
		t.Errorf("watch without sources succeeded")
	}
}
