package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testEicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

func runCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%v: %v", args, err)
		}
		code = ee.Code
	}
	return out.String() + errb.String(), code
}

func TestScanExitCodes(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean")
	os.Mkdir(clean, 0o755)
	os.WriteFile(filepath.Join(clean, "a.txt"), []byte("hello"), 0o644)
	infected := filepath.Join(dir, "infected")
	os.Mkdir(infected, 0o755)
	os.WriteFile(filepath.Join(infected, "eicar.com"), []byte(testEicar), 0o644)
	os.WriteFile(filepath.Join(infected, "skip.iso"), []byte(testEicar), 0o644)

	out, code := runCmd(t, "scan", clean)
	if code != 0 || !strings.Contains(out, "Scanned files: 1") {
		t.Errorf("clean: code %d, output %s", code, out)
	}
	out, code = runCmd(t, "scan", "--exclude", "*.iso", infected)
	if code != 1 || !strings.Contains(out, "eicar.com: Mamori.Test.EICAR FOUND") || strings.Contains(out, "skip.iso") {
		t.Errorf("infected: code %d, output %s", code, out)
	}
	_, code = runCmd(t, "scan", filepath.Join(dir, "missing"))
	if code != 2 {
		t.Errorf("missing: code %d, want 2", code)
	}
	out, code = runCmd(t, "scan", "--json", infected)
	if code != 1 {
		t.Errorf("json: code %d", code)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("json line %q: %v", l, err)
		}
		if m["class_uid"] == float64(2004) && m["activity_name"] == "malware.detection" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("json: %d detection events, want 2:\n%s", n, out)
	}
	_, code = runCmd(t, "scan", "--db", filepath.Join(dir, "nope.ndb"), clean)
	if code != 2 {
		t.Errorf("bad --db: code %d, want 2", code)
	}
}

func TestScanQuarantineCommands(t *testing.T) {
	dir := t.TempDir()
	q := filepath.Join(dir, "q")
	p := filepath.Join(dir, "eicar.com")
	os.WriteFile(p, []byte(testEicar), 0o640)
	out, code := runCmd(t, "scan", "--action", "quarantine", "--quarantine-dir", q, p)
	if code != 1 || !strings.Contains(out, "Quarantined") {
		t.Fatalf("scan --action quarantine: code %d, output %s", code, out)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("file still in place")
	}
	out, _ = runCmd(t, "quarantine", "list", "--dir", q)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "Mamori.Test.EICAR") {
		t.Fatalf("list: %s", out)
	}
	id := strings.Fields(lines[1])[0]
	if out, code := runCmd(t, "quarantine", "restore", "--dir", q, id); code != 0 {
		t.Fatalf("restore: %d %s", code, out)
	}
	if b, _ := os.ReadFile(p); string(b) != testEicar {
		t.Error("restored content differs")
	}
	if _, code := runCmd(t, "quarantine", "delete", "--dir", q, id); code != 2 {
		t.Errorf("delete of a restored entry: code %d, want 2", code)
	}
}
