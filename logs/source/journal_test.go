package source

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseJournalJSON(t *testing.T) {
	line := `{"__CURSOR":"s=abc;i=1","__REALTIME_TIMESTAMP":"1732528800000000","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd-session","_PID":"4415","MESSAGE":"Failed password for trend from 10.3.98.76 port 4415 ssh2"}`
	e, err := parseJournalJSON([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if e.Program != "sshd-session" || e.PID != "4415" || e.Host != "web1" || e.Cursor != "s=abc;i=1" || e.Time.Unix() != 1732528800 || !strings.HasPrefix(e.Message, "Failed") {
		t.Errorf("parseJournalJSON = %+v", e)
	}
	e, _ = parseJournalJSON([]byte(`{"MESSAGE":[70,97,105,108,255]}`))
	if e.Message != "Fail\xff" {
		t.Errorf("byte-array MESSAGE = %q", e.Message)
	}
}

// TestJournalCursor reads a real journal twice through journalctl and
// checks the second run resumes after the saved cursor.
func TestJournalCursor(t *testing.T) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("journalctl missing")
		}
		t.Skip("journalctl not installed")
	}
	out, err := exec.Command("journalctl", "-o", "json", "-n", "3", "--no-pager").Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Skip("no journal to read on this host (no systemd-journald): journalctl -n 3 gave nothing")
	}
	pos, _ := LoadPositions(filepath.Join(t.TempDir(), "pos.json"))
	j := &Journal{Args: []string{"-n", "3"}}
	var first []string
	if err := j.Run(context.Background(), pos, func(e JournalEntry) { first = append(first, e.Cursor) }); err != nil {
		t.Fatal(err)
	}
	if len(first) == 0 || pos.GetCursor() != first[len(first)-1] {
		t.Fatalf("cursor not saved: %v / %q", first, pos.GetCursor())
	}
	var second []string
	j.Args = nil
	if err := j.Run(context.Background(), pos, func(e JournalEntry) { second = append(second, e.Cursor) }); err != nil {
		t.Fatal(err)
	}
	for _, c := range second {
		for _, f := range first {
			if c == f {
				t.Fatalf("entry %s read twice", c)
			}
		}
	}
}
