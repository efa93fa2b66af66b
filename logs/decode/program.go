package decode

import "strings"

// decodeProgram sets the process fields and hands the message to the
// decoder of its program. Unknown programs keep Service = the program name,
// which is how Sigma's builtin Linux rules name their services (vsftpd,
// clamav, guacamole …).
func decodeProgram(prog, pid, msg string, r *Record) {
	r.Product = "linux"
	// rsyslog's "message repeated 5 times: [ Failed password …]" stands
	// for five events.
	if strings.HasPrefix(msg, "message repeated ") {
		rest := msg[len("message repeated "):]
		n := 0
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' && n < 1e6 {
			n = n*10 + int(rest[i]-'0')
			i++
		}
		if strings.HasPrefix(rest[i:], " times: [") && n > 0 {
			inner := strings.TrimPrefix(rest[i+len(" times: ["):], " ")
			inner = strings.TrimSuffix(trimSpace(inner), "]")
			msg = inner
			r.Repeat = n
		}
	}
	r.Set(Message, msg)
	if prog != "" {
		r.Set(ProcessName, prog)
	}
	if pid != "" {
		r.Set(ProcessPID, pid)
	}
	base := prog
	if i := strings.IndexByte(prog, '/'); i > 0 {
		base = prog[:i]
	}
	// "sshd(pam_unix)" is how old PAM tagged its messages.
	if i := strings.IndexByte(prog, '('); i > 0 {
		base = prog[:i]
		if strings.HasPrefix(prog[i:], "(pam_") {
			r.Service = serviceOf(base)
			decodePAM(msg, r)
			return
		}
	}
	r.Service = serviceOf(base)
	switch r.Service {
	case "sshd":
		decodeSSHD(msg, r)
	case "sudo":
		decodeSudo(msg, r)
	case "su":
		decodeSu(msg, r)
	case "cron":
		decodeCron(msg, r)
	case "systemd-logind":
		decodeLogind(msg, r)
	case "nginx", "apache", "apache2", "httpd":
		decodeWebInSyslog(msg, r)
	case "useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel", "passwd", "chpasswd", "chage", "gpasswd":
		decodeAccount(base, msg, r)
	default:
		decodePAMAnywhere(msg, r)
	}
}

func serviceOf(prog string) string {
	switch prog {
	case "sshd", "sshd-session", "sshd-auth":
		// OpenSSH ≥ 9.8 logs per-connection work as sshd-session.
		return "sshd"
	case "CRON", "cron", "crond", "anacron":
		return "cron"
	case "audispd", "auditd", "audit":
		return "auditd"
	}
	return prog
}

// decodePAMAnywhere decodes PAM messages logged by any program
// ("pam_unix(vsftpd:auth): …", "(pam_unix) …").
func decodePAMAnywhere(msg string, r *Record) {
	if strings.HasPrefix(msg, "pam_") || strings.HasPrefix(msg, "(pam_") {
		decodePAM(msg, r)
	}
}

// decodePAM handles pam_unix and friends:
//
//	pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root
//	pam_unix(sshd:session): session opened for user bob(uid=1000) by (uid=0)
//	pam_unix(sudo:auth): conversation failed / auth could not identify password for [bob]
func decodePAM(msg string, r *Record) {
	rest := msg
	if strings.HasPrefix(rest, "(") {
		if i := strings.IndexByte(rest, ')'); i > 0 {
			rest = strings.TrimPrefix(rest[i+1:], " ")
		}
	} else if strings.HasPrefix(rest, "pam_") {
		i := strings.IndexAny(rest, "(:")
		if i < 0 {
			return
		}
		if rest[i] == '(' {
			j := strings.IndexByte(rest, ')')
			if j < 0 {
				return
			}
			rest = rest[j+1:]
		} else {
			rest = rest[i:]
		}
		rest = strings.TrimPrefix(strings.TrimPrefix(rest, ":"), " ")
	}
	switch {
	case strings.HasPrefix(rest, "authentication failure;"):
		r.Set(EventAction, "pam_auth_failure")
		r.Set(EventOutcome, "failure")
		r.Set(EventCategory, "authentication")
		kvs := rest[len("authentication failure;"):]
		pamKVs(kvs, r)
	case strings.HasPrefix(rest, "session opened for user "):
		r.Set(EventAction, "session_opened")
		r.Set(EventOutcome, "success")
		r.Set(EventCategory, "session")
		u := rest[len("session opened for user "):]
		r.Set(UserName, cutUser(u))
		if i := strings.Index(u, " by "); i >= 0 {
			by := u[i+4:]
			if n := cutUser(by); n != "" && !strings.HasPrefix(by, "(") {
				r.setExtra("user.effective.name", n)
			}
		}
	case strings.HasPrefix(rest, "session closed for user "):
		r.Set(EventAction, "session_closed")
		r.Set(EventCategory, "session")
		r.Set(UserName, cutUser(rest[len("session closed for user "):]))
	case strings.HasPrefix(rest, "check pass; user unknown"):
		r.Set(EventAction, "pam_user_unknown")
		r.Set(EventOutcome, "failure")
	case strings.HasPrefix(rest, "auth could not identify password for ["):
		r.Set(EventAction, "pam_auth_failure")
		r.Set(EventOutcome, "failure")
		u := rest[len("auth could not identify password for ["):]
		if i := strings.IndexByte(u, ']'); i >= 0 {
			r.Set(UserName, u[:i])
		}
	case strings.HasPrefix(rest, "password changed for "):
		r.Set(EventAction, "password_changed")
		r.Set(UserTarget, trimSpace(rest[len("password changed for "):]))
	default:
		return
	}
	r.Decoded = true
}

// cutUser returns "bob" from "bob(uid=1000) by (uid=0)" or "bob".
func cutUser(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '(' || s[i] == ' ' {
			return s[:i]
		}
	}
	return s
}

// setHost stores a client address as source.ip, or as source.domain when it
// is a name. "::ffff:1.2.3.4" is stored as the IPv4 address it maps.
func setHost(r *Record, h string) {
	h = strings.TrimPrefix(h, "::ffff:")
	if looksLikeIP(h) {
		r.Set(SourceIP, h)
	} else {
		r.Set(SourceDomain, h)
	}
}

// looksLikeIP accepts dotted quads and anything with a colon made of hex
// digits, colons and dots. It is a shape check, not a validator: decoders
// keep what the log says (fail2ban's test logs have "192.030.0.6").
func looksLikeIP(s string) bool {
	if s == "" {
		return false
	}
	colon, letters, dots := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':':
			colon = true
		case c == '.':
			dots++
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			letters = true
		case c == '%' && colon:
			return true
		default:
			return false
		}
	}
	return colon || dots == 3 && !letters
}

// pamKVs reads "logname= uid=0 euid=0 tty=ssh ruser= rhost=H  user=U". The
// client controls ruser and user, and either can smuggle in a fake
// "rhost=": PAM's own rhost is the last one before the first " user=" that
// follows an rhost.
func pamKVs(kvs string, r *Record) {
	first := strings.Index(kvs, "rhost=")
	if first >= 0 {
		limit := len(kvs)
		if u := strings.Index(kvs[first:], " user="); u >= 0 {
			limit = first + u
		}
		h := strings.LastIndex(kvs[:limit], "rhost=")
		v := kvs[h+6:]
		if sp := strings.IndexByte(v, ' '); sp >= 0 {
			v = v[:sp]
		}
		if v != "" {
			setHost(r, v)
		}
		if u := strings.LastIndex(kvs, " user="); u >= 0 && u >= limit {
			r.Set(UserName, trimSpace(kvs[u+6:]))
		}
	}
	for _, k := range [...]string{"ruser=", "tty="} {
		i := strings.Index(kvs, k)
		if i < 0 {
			continue
		}
		v := kvs[i+len(k):]
		if sp := strings.IndexByte(v, ' '); sp >= 0 {
			v = v[:sp]
		}
		if v == "" {
			continue
		}
		if k == "tty=" {
			r.Set(ProcessTTY, v)
		} else {
			r.setExtra("pam.ruser", v)
		}
	}
}
