package logs

import (
	"os"
	"strings"
	"testing"
	"time"
)

const sigmaHQ = "../../shared/corpus/sigma-rules/rules/"

// TestSigmaHQRulesFire runs third-party SigmaHQ rules on lines written from
// the examples in their own comments and references, and checks that the
// alert shows the rule's author (DRL 1.1).
func TestSigmaHQRulesFire(t *testing.T) {
	if _, err := os.Stat(sigmaHQ); err != nil {
		skipOrFail(t, "corpus sigma-rules not found")
	}
	set, err := LoadRules([]string{sigmaHQ + "linux/builtin", sigmaHQ + "web"}, true, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Rules: set, Location: time.UTC, Ref: testRef}
	cases := []struct{ line, rule, author string }{
		{"Nov 25 10:00:00 h sshd[1]: fatal: buffer_get_string: bad string", "Suspicious OpenSSH Daemon Error", "Florian Roth (Nextron Systems)"},
		{"Dec 21 17:13:54 testserver useradd[1337]: new user: name=john, UID=0, GID=0, home=/home/john, shell=/bin/bash", "Privileged User Has Been Created", "Pawel Mazur"},
		{`203.0.113.9 - - [25/Nov/2026:10:00:00 +0000] "GET /cgi-bin/x?f=../../../etc/passwd HTTP/1.1" 404 10 "-" "curl"`, "Path Traversal Exploitation Attempts", "Subhash Popuri"},
	}
	for _, tc := range cases {
		evs := run(t, cfg, []string{tc.line})
		found := false
		for _, e := range evs {
			if e.Rule.Name == tc.rule {
				found = true
				if !strings.Contains(e.Rule.Author, tc.author) || !strings.Contains(e.Message, "[rule by ") {
					t.Errorf("%s: author %q, message %q: want author %q shown", tc.rule, e.Rule.Author, e.Message, tc.author)
				}
			}
		}
		if !found {
			var names []string
			for _, e := range evs {
				names = append(names, e.Rule.Name)
			}
			t.Errorf("line %q: alerts %q, want %q", tc.line, names, tc.rule)
		}
	}
}

// TestSigmaHQAuditd runs SigmaHQ's auditd rules on auditd records written
// from the rules' own selections.
func TestSigmaHQAuditd(t *testing.T) {
	if _, err := os.Stat(sigmaHQ); err != nil {
		skipOrFail(t, "corpus sigma-rules not found")
	}
	set, err := LoadRules([]string{sigmaHQ + "linux/auditd"}, true, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Rules: set, Location: time.UTC, Ref: testRef}
	cases := []struct{ line, rule string }{
		{`type=PATH msg=audit(1700000000.000:5): item=0 name="/etc/pam.d/system-auth" inode=1 nametype=NORMAL`, "Linux Keylogging with Pam.d"},
		{`type=EXECVE msg=audit(1700000000.000:6): argc=3 a0="sysctl" a1="-w" a2="kernel.randomize_va_space=0"`, "ASLR Disabled Via Sysctl or Direct Syscall - Linux"},
		{"type=SYSCALL msg=audit(1700000000.000:7): arch=c000003e syscall=135 success=yes exit=0 a0=40000 a1=0 comm=\"x\" exe=\"/x\" key=(null)\x1dARCH=x86_64 SYSCALL=personality AUID=\"root\"", "ASLR Disabled Via Sysctl or Direct Syscall - Linux"},
	}
	for _, tc := range cases {
		var names []string
		for _, e := range run(t, cfg, []string{tc.line}) {
			names = append(names, e.Rule.Name)
		}
		if !strings.Contains(strings.Join(names, "|"), tc.rule) {
			t.Errorf("line %q: alerts %q, want %q", tc.line, names, tc.rule)
		}
	}
}
