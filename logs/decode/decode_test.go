package decode

import (
	"strings"
	"testing"
	"time"
)

var ref = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestDecode(t *testing.T) {
	cases := []struct {
		name    string
		line    string
		service string
		want    map[string]string
		time    string
	}{
		{"seed failed password", "Nov 25 10:00:01 web1 sshd[4415]: Failed password for trend from 10.3.98.76 port 4415 ssh2", "sshd",
			map[string]string{"event.action": ActSSHFailed, "user.name": "trend", "source.ip": "10.3.98.76", "source.port": "4415", "auth.method": "password", "host.hostname": "web1", "event.outcome": "failure"},
			"2026-11-25T10:00:01Z"},
		{"sshd-session (OpenSSH 9.8)", "Jul  3 14:59:17 host sshd-session[1571]: Failed password for root from 192.0.2.1 port 56502 ssh2", "sshd",
			map[string]string{"event.action": ActSSHFailed, "user.name": "root", "source.ip": "192.0.2.1", "process.name": "sshd-session"}, "2026-07-03T14:59:17Z"},
		{"invalid user failed", "Feb 25 14:34:10 belka sshd[31603]: Failed password for invalid user ROOT from aaaa:bbbb:cccc:1234::1:1 port 50273 ssh2", "sshd",
			map[string]string{"event.action": ActSSHFailed, "user.name": "ROOT", "source.ip": "aaaa:bbbb:cccc:1234::1:1", "user.invalid": "true"}, ""},
		{"publickey accepted", "Nov 28 09:16:03 srv sshd[32307]: Accepted publickey for git from 192.0.2.1 port 57904 ssh2: DSA 36:48:xx", "sshd",
			map[string]string{"event.action": ActSSHAccepted, "auth.method": "publickey", "user.name": "git", "event.outcome": "success"}, ""},
		{"failed publickey", "Jul 05 18:22:44 mercury sshd[4669]: Failed publickey for invalid user graysky from 127.0.0.1 port 37954 ssh2: RSA SHA256:x", "sshd",
			map[string]string{"event.action": ActSSHFailed, "auth.method": "publickey", "user.name": "graysky", "source.ip": "127.0.0.1"}, ""},
		{"user name injection", "Nov 11 08:04:52 redbamboo sshd[2737]: Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.1 port 58946 ssh2", "sshd",
			map[string]string{"source.ip": "127.0.0.1", "user.name": "test from 10.10.1.2 port 55555 ssh2"}, ""},
		{"invalid user", "Jul 20 14:42:12 localhost sshd[22708]: Invalid user ftp from 192.0.2.2 port 37220", "sshd",
			map[string]string{"event.action": ActSSHInvalidUser, "user.name": "ftp", "source.ip": "192.0.2.2"}, ""},
		{"empty invalid user", "Jun  6 04:17:04 host sshd[1189074]: Invalid user  from 192.0.2.68 port 34916", "sshd",
			map[string]string{"event.action": ActSSHInvalidUser, "user.name": "", "source.ip": "192.0.2.68"}, ""},
		{"max auth", "Nov 23 21:50:37 myhost sshd[21810]: error: maximum authentication attempts exceeded for root from 61.0.0.1 port 49940 ssh2 [preauth]", "sshd",
			map[string]string{"event.action": ActSSHMaxAuth, "source.ip": "61.0.0.1", "user.name": "root", "log.level": "error", "sshd.preauth": "true"}, ""},
		{"no identification", "Jun 7 01:11:57 host sshd[8782]: Did not receive identification string from 192.0.2.5 port 35836", "sshd",
			map[string]string{"event.action": ActSSHNoIdent, "source.ip": "192.0.2.5"}, ""},
		{"kex", "Nov 26 13:03:30 srv sshd[45]: fatal: Unable to negotiate with 192.0.2.2 port 55419: no matching key exchange method found. Their offer: x", "sshd",
			map[string]string{"event.action": ActSSHKexError, "source.ip": "192.0.2.2", "log.level": "fatal"}, ""},
		{"kex identification", "Jun  7 04:10:35 host sshd[424228]: error: kex_exchange_identification: Connection closed by remote host", "sshd",
			map[string]string{"event.action": ActSSHNoIdent}, ""},
		{"preauth disconnect", "Jul 17 23:03:05 srv sshd[1296]: Connection closed by authenticating user root 192.0.2.10 port 46038 [preauth]", "sshd",
			map[string]string{"event.action": ActSSHPreauthDisc, "source.ip": "192.0.2.10", "user.name": "root"}, ""},
		{"received disconnect", "May 27 00:16:33 host sshd[2364]: Received disconnect from 198.51.100.76 port 58846:11: Bye Bye [preauth]", "sshd",
			map[string]string{"event.action": ActSSHPreauthDisc, "source.ip": "198.51.100.76", "source.port": "58846"}, ""},
		{"pam auth failure", "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186  user=root", "sshd",
			map[string]string{"event.action": "pam_auth_failure", "source.ip": "173.234.31.186", "user.name": "root"}, ""},
		{"old pam tag", "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root", "sshd",
			map[string]string{"event.action": "pam_auth_failure", "source.domain": "220-135-151-1.hinet-ip.hinet.net", "user.name": "root"}, ""},
		{"sudo command", "Oct  6 10:00:00 h sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update", "sudo",
			map[string]string{"event.action": "sudo_command", "user.name": "alice", "user.target.name": "root", "process.command_line": "/usr/bin/apt update", "process.working_directory": "/home/alice"}, ""},
		{"sudo failures", "Oct  6 10:00:00 h sudo:    bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/bash", "sudo",
			map[string]string{"event.action": "sudo_auth_failure", "user.name": "bob", "sudo.attempts": "3", "event.outcome": "failure"}, ""},
		{"not in sudoers", "Oct  6 10:00:00 h sudo:    eve : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh", "sudo",
			map[string]string{"event.action": "sudo_not_in_sudoers", "user.name": "eve"}, ""},
		{"su", "Oct  6 10:00:00 h su[123]: (to root) bob on pts/0", "su",
			map[string]string{"event.action": "su_success", "user.name": "bob", "user.target.name": "root"}, ""},
		{"su failed", "Oct  6 10:00:00 h su[123]: FAILED SU (to root) bob on pts/0", "su",
			map[string]string{"event.action": "su_failure", "user.name": "bob"}, ""},
		{"useradd", "Oct  6 10:00:00 h useradd[9]: new user: name=eve, UID=1001, GID=1001, home=/home/eve, shell=/bin/bash, from=/dev/pts/0", "useradd",
			map[string]string{"event.action": "user_created", "user.target.name": "eve", "user.target.id": "1001"}, ""},
		{"usermod sudo", "Oct  6 10:00:00 h usermod[9]: add 'eve' to group 'sudo'", "usermod",
			map[string]string{"event.action": "group_member_added", "user.target.name": "eve", "group.name": "sudo"}, ""},
		{"groupadd", "Oct  6 10:00:00 h groupadd[9]: new group: name=ops, GID=1005", "groupadd",
			map[string]string{"event.action": "group_created", "group.name": "ops"}, ""},
		{"passwd", "Oct  6 10:00:00 h passwd[9]: pam_unix(passwd:chauthtok): password changed for eve", "passwd",
			map[string]string{"event.action": "password_changed", "user.target.name": "eve"}, ""},
		{"chpasswd", "Oct  6 10:00:00 h chpasswd[9]: pam_unix(chpasswd:chauthtok): password changed for bob", "chpasswd",
			map[string]string{"event.action": "password_changed", "user.target.name": "bob"}, ""},
		{"logind", "Oct  6 10:00:00 h systemd-logind[412]: New session 17 of user bob.", "systemd-logind",
			map[string]string{"event.action": "session_new", "user.name": "bob", "session.id": "17"}, ""},
		{"cron cmd", "Oct  6 10:00:00 h CRON[99]: (root) CMD (run-parts /etc/cron.hourly)", "cron",
			map[string]string{"event.action": "cron_command", "user.name": "root", "process.command_line": "run-parts /etc/cron.hourly"}, ""},
		{"cron pam", "Oct  6 10:00:00 h CRON[99]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", "cron",
			map[string]string{"event.action": "session_opened", "user.name": "root"}, ""},
		{"rfc5424", `<38>1 2019-07-08T17:40:17.954167-04:00 hostname.example.com sshd 55555 - [timeQuality tzKnown="1"][x@1 a="[b\]"] Failed unknown for invalid user redmond from 192.0.2.2 port 5 ssh2`, "sshd",
			map[string]string{"event.action": ActSSHFailed, "source.ip": "192.0.2.2", "host.hostname": "hostname.example.com", "process.pid": "55555"}, "2019-07-08T21:40:17.954167Z"},
		{"rfc3339 syslog", "2015-04-16T18:02:50.321974+00:00 host sshd[2716]: Connection closed by 192.0.2.112 [preauth]", "sshd",
			map[string]string{"event.action": ActSSHPreauthDisc, "source.ip": "192.0.2.112"}, "2015-04-16T18:02:50.321974Z"},
		{"year inference: december read in november is this year", "Dec 24 10:00:00 h sshd[1]: Invalid user a from 1.2.3.4", "sshd", nil, "2025-12-24T10:00:00Z"},
		{"year inference: january", "Jan  2 10:00:00 h sshd[1]: Invalid user a from 1.2.3.4", "sshd", nil, "2026-01-02T10:00:00Z"},
		{"access combined", `203.0.113.9 - bob [10/Oct/2026:13:55:36 -0700] "GET /a.php?id=1%27%20or%201=1 HTTP/1.1" 404 209 "http://r/" "sqlmap/1.7"`, "",
			map[string]string{"source.ip": "203.0.113.9", "user.name": "bob", "http.request.method": "GET", "url.path": "/a.php", "url.query": "id=1%27%20or%201=1",
				"http.response.status_code": "404", "user_agent.original": "sqlmap/1.7", "http.request.referrer": "http://r/", "http.version": "1.1"}, "2026-10-10T20:55:36Z"},
		{"access common", `::1 - - [10/Oct/2026:13:55:36 +0000] "POST /login HTTP/1.0" 200 20`, "",
			map[string]string{"source.ip": "::1", "http.request.method": "POST", "url.original": "/login"}, ""},
		{"apache 2.4 error", "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:1234] AH00128: File does not exist", "error",
			map[string]string{"source.ip": "72.15.99.187", "log.level": "error"}, ""},
		{"nginx error", `2012/04/09 11:53:29 [error] 2865#0: *66647 user "xyz" was not found in "/var/www/.htpasswd", client: 192.0.43.10, server: www.myhost.com, request: "GET / HTTP/1.1", host: "www.myhost.com"`, "error",
			map[string]string{"source.ip": "192.0.43.10", "log.level": "error", "http.request.method": "GET"}, ""},
		{"auditd", `type=USER_LOGIN msg=audit(1364481363.243:24287): pid=1 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct="root" exe="/usr/sbin/sshd" hostname=? addr=10.1.1.1 terminal=ssh res=failed'`, "auditd",
			map[string]string{"type": "USER_LOGIN", "user.name": "root", "source.ip": "10.1.1.1", "event.outcome": "failure", "exe": "/usr/sbin/sshd", "audit.id": "1364481363.243:24287"}, "2013-03-28T14:36:03.243Z"},
		{"auditd hex", `type=EXECVE msg=audit(1.0:2): argc=2 a0="bash" a1=2D63`, "auditd", map[string]string{"a0": "bash", "a1": "-c"}, ""},
		{"unknown", "\x00\x01garbage \xff\xfe", "", nil, ""},
		{"invalid utf8 sshd", "Nov 25 10:00:01 web1 sshd[1]: Invalid user \xff\xfe from 1.2.3.4 port 5", "sshd", map[string]string{"user.name": "\xff\xfe", "source.ip": "1.2.3.4"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decoder{Ref: ref}
			var r Record
			d.Decode(tc.line, &r)
			if r.Service != tc.service {
				t.Errorf("Decode(%q).Service = %q, want %q", tc.line, r.Service, tc.service)
			}
			for k, v := range tc.want {
				got, ok := r.Lookup(k)
				if !ok || got != v {
					t.Errorf("Decode(%q)[%s] = %q (present %v), want %q", tc.line, k, got, ok, v)
				}
			}
			if tc.time != "" {
				if got := r.Time.UTC().Format(time.RFC3339Nano); got != tc.time {
					t.Errorf("Decode(%q).Time = %s, want %s", tc.line, got, tc.time)
				}
			}
			if r.Raw != tc.line {
				t.Errorf("Raw not kept")
			}
		})
	}
}

func TestTimeZone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	d := Decoder{Ref: ref, Loc: tokyo}
	var r Record
	d.Decode("Nov 25 09:00:00 h sshd[1]: Invalid user a from 1.2.3.4", &r)
	if got := r.Time.UTC().Format(time.RFC3339); got != "2026-11-25T00:00:00Z" {
		t.Errorf("time in Asia/Tokyo = %s, want 2026-11-25T00:00:00Z", got)
	}
}

func TestCustomDecoders(t *testing.T) {
	decs, err := LoadCustom("testdata/decoders.yml")
	if err != nil {
		t.Fatal(err)
	}
	d := Decoder{Ref: ref, Custom: decs}
	var r Record
	d.Decode("Nov 25 09:00:00 h myapp[7]: login failed for alice from 198.51.100.7", &r)
	if v, _ := r.Lookup("source.ip"); v != "198.51.100.7" || r.Service != "myapp" {
		t.Errorf("regex decoder: source.ip=%q service=%q", v, r.Service)
	}
	if v, _ := r.Lookup("event.action"); v != "myapp_login_failed" {
		t.Errorf("regex decoder: event.action=%q", v)
	}
	d.Decode(`{"evt":"denied","client":{"ip":"192.0.2.9"},"n":3}`, &r)
	if v, _ := r.Lookup("source.ip"); v != "192.0.2.9" || r.Format != "jsonapp" {
		t.Errorf("json decoder: source.ip=%q format=%q", v, r.Format)
	}
	d.Decode(`kvapp: action=drop src=203.0.113.5 user="bob"`, &r)
	if v, _ := r.Lookup("source.ip"); v != "203.0.113.5" {
		t.Errorf("kv decoder: source.ip=%q", v)
	}
	if _, err := LoadCustom("testdata/decoders-bad.yml"); err == nil {
		t.Errorf("LoadCustom of a bad file succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"Nov 25 10:00:01 web1 sshd[4415]: Failed password for trend from 10.3.98.76 port 4415 ssh2",
		`<38>1 2019-07-08T17:40:17.954167-04:00 h sshd 5 - [a b="\]"] Failed x for y from 1.2.3.4 port 5 ssh2`,
		"<13>Nov 25 10:00:01 h prog: msg",
		"2015-04-16T18:02:50.321974+00:00 host sshd[2716]: Connection closed by 192.0.2.112 [preauth]",
		`1.2.3.4 - - [10/Oct/2026:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "-"`,
		"[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] x",
		"type=SYSCALL msg=audit(1.2:3): a0=41 exe=\"x\"",
		"Oct  6 10:00:00 h sudo:    a : TTY=x ; COMMAND=y",
		"Feb 30 99:99:99 x",
		"host sshd[1]: Failed password for x from 1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		d := Decoder{Ref: ref}
		var r Record
		d.Decode(line, &r)
		if r.Raw != strings.TrimRight(line, "\r\n") {
			t.Fatalf("Raw = %q, want the line without its line ending", r.Raw)
		}
		_ = r.Fields()
	})
}

// TestAuditGrouping: the records of one auditd event share the context of
// its SYSCALL record; a new event id starts afresh.
func TestAuditGrouping(t *testing.T) {
	lines := []string{
		`type=SYSCALL msg=audit(1700000000.100:42): arch=c000003e syscall=59 success=yes exit=0 uid=0 comm="wget" exe="/usr/bin/wget" key="susp_activity"`,
		`type=EXECVE msg=audit(1700000000.100:42): argc=2 a0="wget" a1="http://x/y.sh"`,
		`type=PATH msg=audit(1700000000.100:42): item=0 name="/usr/bin/wget" nametype=NORMAL`,
		`type=EXECVE msg=audit(1700000001.000:43): argc=1 a0="ls"`,
	}
	var d Decoder
	var g Grouper
	var r Record
	want := []map[string]string{
		{"type": "SYSCALL", "exe": "/usr/bin/wget"},
		{"type": "EXECVE", "exe": "/usr/bin/wget", "key": "susp_activity", "a1": "http://x/y.sh"},
		{"type": "PATH", "name": "/usr/bin/wget", "syscall": "59", "a1": "http://x/y.sh"},
		{"type": "EXECVE", "a0": "ls"},
	}
	for i, l := range lines {
		d.Decode(l, &r)
		g.Apply(&r)
		for k, v := range want[i] {
			if got, _ := r.Lookup(k); got != v {
				t.Errorf("record %d: %s = %q, want %q", i, k, got, v)
			}
		}
	}
	if _, ok := r.Lookup("exe"); ok {
		t.Errorf("context of event 42 leaked into event 43")
	}
}

func TestRepeatedMessage(t *testing.T) {
	var d Decoder
	var r Record
	d.Decode("Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]\r", &r)
	if ip, _ := r.Get(SourceIP); ip != "5.36.59.76" || r.Repeat != 5 {
		t.Errorf("repeated: ip %q repeat %d", ip, r.Repeat)
	}
}
