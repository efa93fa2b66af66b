package decode

import "strings"

// decodeSudo handles sudo's own lines ("bob : TTY=pts/0 ; PWD=/ ; USER=root ;
// COMMAND=/bin/ls", with a leading reason on failures) and its PAM lines.
func decodeSudo(msg string, r *Record) {
	m := trimSpace(msg)
	if strings.HasPrefix(m, "pam_") {
		decodePAM(m, r)
		return
	}
	i := strings.Index(m, " : ")
	if i < 0 {
		return
	}
	r.Set(UserName, m[:i])
	rest := m[i+3:]
	action, outcome := "sudo_command", "success"
	parts := strings.Split(rest, " ; ")
	for _, p := range parts {
		k, v, found := strings.Cut(p, "=")
		if !found {
			switch {
			case strings.Contains(p, "incorrect password attempt"):
				action, outcome = "sudo_auth_failure", "failure"
				r.setExtra("sudo.attempts", firstWord(p))
			case strings.Contains(p, "NOT in sudoers"):
				action, outcome = "sudo_not_in_sudoers", "failure"
			case strings.Contains(p, "command not allowed"):
				action, outcome = "sudo_command_denied", "failure"
			case strings.Contains(p, "a password is required"):
				action, outcome = "sudo_password_required", "failure"
			}
			continue
		}
		switch k {
		case "TTY":
			r.Set(ProcessTTY, v)
		case "PWD":
			r.Set(ProcessWorkingDir, v)
		case "USER":
			r.Set(UserTarget, v)
		case "COMMAND":
			// COMMAND is last and may itself contain " ; ".
			idx := strings.Index(rest, "COMMAND=")
			r.Set(ProcessCommandLine, rest[idx+len("COMMAND="):])
		}
	}
	r.Set(EventAction, action)
	r.Set(EventOutcome, outcome)
	r.Set(EventCategory, "process")
	r.Decoded = true
}

// decodeSu handles "(to root) bob on pts/0", "FAILED SU (to root) bob on
// pts/0", "+ pts/0 bob:root", "- pts/0 bob:root" and PAM lines.
func decodeSu(msg string, r *Record) {
	m := trimSpace(msg)
	action, outcome := "su_success", "success"
	switch {
	case strings.HasPrefix(m, "pam_"), strings.HasPrefix(m, "(pam_"):
		decodePAM(m, r)
		return
	case strings.HasPrefix(m, "FAILED SU "):
		m = m[len("FAILED SU "):]
		action, outcome = "su_failure", "failure"
	case strings.HasPrefix(m, "+ ") || strings.HasPrefix(m, "- "):
		if m[0] == '-' {
			action, outcome = "su_failure", "failure"
		}
		f := strings.Fields(m)
		if len(f) >= 3 {
			from, to, _ := strings.Cut(f[2], ":")
			r.Set(UserName, from)
			r.Set(UserTarget, to)
			r.Set(ProcessTTY, f[1])
		}
		r.Set(EventAction, action)
		r.Set(EventOutcome, outcome)
		r.Decoded = true
		return
	}
	if !strings.HasPrefix(m, "(to ") {
		return
	}
	end := strings.IndexByte(m, ')')
	if end < 0 {
		return
	}
	r.Set(UserTarget, m[4:end])
	rest := strings.TrimPrefix(m[end+1:], " ")
	who, tty, _ := strings.Cut(rest, " on ")
	r.Set(UserName, who)
	if tty != "" {
		r.Set(ProcessTTY, tty)
	}
	r.Set(EventAction, action)
	r.Set(EventOutcome, outcome)
	r.Decoded = true
}

// decodeCron handles "(root) CMD (command)" and PAM session lines.
func decodeCron(msg string, r *Record) {
	m := trimSpace(msg)
	if strings.HasPrefix(m, "pam_") {
		decodePAM(m, r)
		return
	}
	if !strings.HasPrefix(m, "(") {
		return
	}
	end := strings.IndexByte(m, ')')
	if end < 0 {
		return
	}
	r.Set(UserName, m[1:end])
	rest := strings.TrimPrefix(m[end+1:], " ")
	switch {
	case strings.HasPrefix(rest, "CMD ("):
		r.Set(ProcessCommandLine, strings.TrimSuffix(rest[5:], ")"))
		r.Set(EventAction, "cron_command")
	case strings.HasPrefix(rest, "REPLACE"), strings.HasPrefix(rest, "BEGIN EDIT"), strings.HasPrefix(rest, "END EDIT"):
		r.Set(EventAction, "crontab_edit")
	case strings.HasPrefix(rest, "RELOAD"):
		r.Set(EventAction, "crontab_reload")
	default:
		return
	}
	r.Decoded = true
}

// decodeLogind handles "New session 12 of user bob.", "Removed session 12."
// and "Session 12 logged out. …".
func decodeLogind(msg string, r *Record) {
	m := trimSpace(msg)
	switch {
	case strings.HasPrefix(m, "New session "):
		rest := m[len("New session "):]
		id, user, ok := strings.Cut(rest, " of user ")
		if !ok {
			return
		}
		r.setExtra("session.id", id)
		r.Set(UserName, strings.TrimSuffix(user, "."))
		r.Set(EventAction, "session_new")
	case strings.HasPrefix(m, "Removed session "):
		r.setExtra("session.id", strings.TrimSuffix(m[len("Removed session "):], "."))
		r.Set(EventAction, "session_removed")
	case strings.HasPrefix(m, "Session ") && strings.Contains(m, " logged out"):
		r.setExtra("session.id", firstWord(m[len("Session "):]))
		r.Set(EventAction, "session_logged_out")
	default:
		return
	}
	r.Set(EventCategory, "session")
	r.Decoded = true
}

// decodeAccount handles the shadow-utils account tools: useradd, usermod,
// userdel, groupadd, groupmod, groupdel, passwd, chpasswd, chage, gpasswd.
func decodeAccount(prog, msg string, r *Record) {
	m := trimSpace(msg)
	if strings.HasPrefix(m, "pam_") {
		decodePAM(m, r)
		return
	}
	act := ""
	switch {
	case strings.HasPrefix(m, "new user: "):
		act = "user_created"
		kvList(m[len("new user: "):], r)
	case strings.HasPrefix(m, "new group: "):
		act = "group_created"
		if n := kvGet(m[len("new group: "):], "name"); n != "" {
			r.Set(GroupName, n)
		}
	case strings.HasPrefix(m, "group added to "):
		act = "group_created"
		if i := strings.Index(m, ": "); i >= 0 {
			if n := kvGet(m[i+2:], "name"); n != "" {
				r.Set(GroupName, n)
			}
		}
	case strings.HasPrefix(m, "add '"):
		// "add 'eve' to group 'sudo'" / "add 'eve' to shadow group 'sudo'"
		act = "group_member_added"
		q := quoted(m)
		if len(q) >= 2 {
			r.Set(UserTarget, q[0])
			r.Set(GroupName, q[1])
		}
	case strings.HasPrefix(m, "delete '"):
		act = "group_member_removed"
		q := quoted(m)
		if len(q) >= 2 {
			r.Set(UserTarget, q[0])
			r.Set(GroupName, q[1])
		}
	case strings.HasPrefix(m, "delete user '"):
		act = "user_deleted"
		if q := quoted(m); len(q) >= 1 {
			r.Set(UserTarget, q[0])
		}
	case strings.HasPrefix(m, "removed group '"), strings.HasPrefix(m, "group '") && strings.Contains(m, "removed"):
		act = "group_deleted"
		if q := quoted(m); len(q) >= 1 {
			r.Set(GroupName, q[0])
		}
	case strings.HasPrefix(m, "change user '"):
		act = "user_changed"
		if q := quoted(m); len(q) >= 1 {
			r.Set(UserTarget, q[0])
		}
		if strings.Contains(m, "password") {
			act = "password_changed"
		}
	case strings.HasPrefix(m, "lock user '"), strings.HasPrefix(m, "unlock user '"):
		act = "user_changed"
		if q := quoted(m); len(q) >= 1 {
			r.Set(UserTarget, q[0])
		}
	case strings.HasPrefix(m, "password for '") && strings.Contains(m, "changed"):
		act = "password_changed"
		if q := quoted(m); len(q) >= 1 {
			r.Set(UserTarget, q[0])
		}
	case strings.HasPrefix(m, "changed password expiry for "):
		act = "user_changed"
		r.Set(UserTarget, m[len("changed password expiry for "):])
	default:
		return
	}
	r.Set(EventAction, act)
	r.Set(EventCategory, "iam")
	r.Decoded = true
}

// kvList stores "name=eve, UID=1001, …" as user.target.name and extras.
func kvList(s string, r *Record) {
	for _, p := range strings.Split(s, ", ") {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			r.Set(UserTarget, v)
		case "UID":
			r.setExtra("user.target.id", v)
		case "GID":
			r.setExtra("group.id", v)
		case "home":
			r.setExtra("user.target.home", v)
		case "shell":
			r.setExtra("user.target.shell", v)
		}
	}
}

func kvGet(s, key string) string {
	for _, p := range strings.Split(s, ", ") {
		if k, v, ok := strings.Cut(p, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// quoted returns the single-quoted words of s.
func quoted(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i+1:], '\'')
		if j < 0 {
			return out
		}
		out = append(out, s[i+1:i+1+j])
		s = s[i+j+2:]
	}
}
