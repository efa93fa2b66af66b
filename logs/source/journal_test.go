package source

import (
	"context"
	"errors"
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

// TestJournalResumesAfterCursor drives Journal with a stand-in journalctl
// (this host has no journald): it checks the arguments mamori passes and
// that the saved cursor is handed back on the next start.
func TestJournalResumesAfterCursor(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "journalctl")
	script := `#!/bin/sh
echo "$@" >> "` + dir + `/args"
case "$*" in
*--after-cursor\ c2*) echo '{"__CURSOR":"c3","__REALTIME_TIMESTAMP":"3000000","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"three"}' ;;
*) echo '{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"1000000","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"one"}'
   echo '{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"2000000","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"two"}' ;;
esac
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	posFile := filepath.Join(dir, "pos.json")
	var got []string
	for i := 0; i < 2; i++ {
		pos, err := LoadPositions(posFile)
		if err != nil {
			t.Fatal(err)
		}
		j := &Journal{Bin: fake}
		if err := j.Run(context.Background(), pos, func(e JournalEntry) { got = append(got, e.Message) }); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(got, ",") != "one,two,three" {
		t.Errorf("messages = %v, want one,two,three (no repeat after restart)", got)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if !strings.Contains(string(args), "-o json") || !strings.Contains(string(args), "--after-cursor c2") {
		t.Errorf("journalctl arguments: %s", args)
	}
	if err := (&Journal{Bin: filepath.Join(dir, "nope")}).Run(context.Background(), &Positions{Files: map[string]Pos{}}, func(JournalEntry) {}); !errors.Is(err, ErrNoJournal) {
		t.Errorf("missing journalctl: %v, want ErrNoJournal", err)
	}
}
