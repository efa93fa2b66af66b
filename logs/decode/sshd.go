package decode

import "strings"

// sshd event.action values. Rules select on these rather than on message
// text so that wording changes across OpenSSH versions stay in one place.
const (
	ActSSHFailed        = "sshd_auth_failure"
	ActSSHAccepted      = "sshd_auth_success"
	ActSSHInvalidUser   = "sshd_invalid_user"
	ActSSHNotAllowed    = "sshd_user_not_allowed"
	ActSSHRootRefused   = "sshd_root_refused"
	ActSSHMaxAuth       = "sshd_max_auth_attempts"
	ActSSHNoIdent       = "sshd_no_identification"
	ActSSHKexError      = "sshd_kex_error"
	ActSSHDisconnect    = "sshd_disconnect"
	ActSSHPreauthDisc   = "sshd_preauth_disconnect"
	ActSSHConnection    = "sshd_connection"
	ActSSHPAMFailure    = "sshd_pam_failure"
	ActSSHReverseMap    = "sshd_reverse_mapping_failed"
	ActSSHTimeout       = "sshd_auth_timeout"
	ActSSHPostponed     = "sshd_auth_postponed"
	ActSSHSessionClosed = "sshd_session_closed"
)

// decodeSSHD decodes the messages of sshd and sshd-session.
func decodeSSHD(msg string, r *Record) {
	m := msg
	// Solaris prefixes "[ID 800047 auth.info] ".
	if strings.HasPrefix(m, "[ID ") {
		if i := strings.IndexByte(m, ']'); i > 0 {
			m = strings.TrimPrefix(m[i+1:], " ")
		}
	}
	level := ""
	if strings.HasPrefix(m, "error: ") {
		m, level = m[7:], "error"
	} else if strings.HasPrefix(m, "fatal: ") {
		m, level = m[7:], "fatal"
	}
	if level != "" {
		r.Set(LogLevel, level)
	}
	preauth := strings.HasSuffix(trimSpace(m), "[preauth]")
	if preauth {
		r.setExtra("sshd.preauth", "true")
	}
	if m == "" {
		return
	}
	ok := false
	switch m[0] {
	case 'F':
		ok = sshFailedAccepted(m, "Failed ", ActSSHFailed, "failure", r)
	case 'A':
		ok = sshFailedAccepted(m, "Accepted ", ActSSHAccepted, "success", r) ||
			sshReverse(m, r)
	case 'P':
		if strings.HasPrefix(m, "PAM: ") {
			ok = sshPAMError(m[5:], r)
		} else if strings.HasPrefix(m, "PAM ") && strings.Contains(m, " more authentication failure") {
			// "PAM 4 more authentication failures; … rhost=H": a summary of
			// failures already logged one by one.
			r.setExtra("pam.more", firstWord(m[4:]))
			if i := strings.IndexByte(m, ';'); i > 0 {
				pamKVs(m[i+1:], r)
			}
			sshAction(r, "pam_auth_failure_summary", "failure")
			ok = true
		} else if strings.HasPrefix(m, "PAM service(") {
			sshAction(r, "pam_max_retries", "failure")
			ok = true
		} else {
			ok = sshFailedAccepted(m, "Postponed ", ActSSHPostponed, "", r)
		}
	case 'I':
		ok = sshInvalid(m, "Invalid user ", r) || sshInvalid(m, "Illegal user ", r)
	case 'U':
		ok = sshUserNotAllowed(m, r) || sshNegotiate(m, r)
	case 'R':
		switch {
		case strings.HasPrefix(m, "ROOT LOGIN REFUSED FROM "):
			setHost(r, firstWord(m[len("ROOT LOGIN REFUSED FROM "):]))
			sshAction(r, ActSSHRootRefused, "failure")
			ok = true
		case strings.HasPrefix(m, "Received disconnect from "):
			ok = sshDisconnect(m[len("Received disconnect from "):], preauth, r)
		}
	case 'D':
		switch {
		case strings.HasPrefix(m, "Did not receive identification string from "):
			sshFrom(m[len("Did not receive identification string"):], r)
			sshAction(r, ActSSHNoIdent, "failure")
			ok = true
		case strings.HasPrefix(m, "Disconnecting: Too many authentication failures"):
			if i := strings.Index(m, " for "); i >= 0 {
				u := strings.TrimSuffix(trimSpace(m[i+5:]), "[preauth]")
				r.Set(UserName, trimSpace(u))
			}
			sshAction(r, ActSSHMaxAuth, "failure")
			ok = true
		case strings.HasPrefix(m, "Disconnecting "):
			rest := m[len("Disconnecting "):]
			ok = sshUserHostPort(rest, r)
			if strings.Contains(m, "Too many authentication failures") {
				sshAction(r, ActSSHMaxAuth, "failure")
			} else {
				sshDisconnectAction(r, preauth)
			}
		case strings.HasPrefix(m, "Disconnected from "):
			ok = sshUserHostPort(m[len("Disconnected from "):], r)
			sshDisconnectAction(r, preauth)
		}
	case 'C':
		switch {
		case strings.HasPrefix(m, "Connection closed by "):
			ok = sshUserHostPort(m[len("Connection closed by "):], r)
			sshDisconnectAction(r, preauth)
		case strings.HasPrefix(m, "Connection reset by "):
			ok = sshUserHostPort(m[len("Connection reset by "):], r)
			sshDisconnectAction(r, preauth)
		case strings.HasPrefix(m, "Connection from "):
			sshFrom(m[len("Connection"):], r)
			sshAction(r, ActSSHConnection, "")
			ok = true
		}
	case 'm':
		if strings.HasPrefix(m, "maximum authentication attempts exceeded for ") {
			rest := m[len("maximum authentication attempts exceeded for "):]
			ok = sshUserFrom(rest, r)
			sshAction(r, ActSSHMaxAuth, "failure")
		}
	case 'k':
		if strings.HasPrefix(m, "kex_exchange_identification: ") {
			sshAction(r, ActSSHNoIdent, "failure")
			ok = true
		}
	case 'b':
		if strings.HasPrefix(m, "banner exchange: Connection from ") {
			sshFrom(m[len("banner exchange: Connection"):], r)
			sshAction(r, ActSSHNoIdent, "failure")
			ok = true
		}
	case 'B':
		if strings.HasPrefix(m, "Bad protocol version identification ") {
			sshLastFrom(m, r)
			sshAction(r, ActSSHNoIdent, "failure")
			ok = true
		}
	case 's':
		if strings.HasPrefix(m, "ssh_dispatch_run_fatal: Connection from ") {
			sshFrom(m[len("ssh_dispatch_run_fatal: Connection"):], r)
			sshAction(r, ActSSHKexError, "failure")
			ok = true
		}
	case 'T':
		if strings.HasPrefix(m, "Timeout before authentication for ") {
			rest := strings.TrimPrefix(m[len("Timeout before authentication for "):], "connection from ")
			setHost(r, firstWord(rest))
			sshAction(r, ActSSHTimeout, "failure")
			ok = true
		}
	case 'p', '(':
		decodePAM(m, r)
		ok = r.Decoded
	case 'i':
		// "input_userauth_request: invalid user X [preauth]": the same
		// attempt as the "Invalid user X from H" line, without the host.
		if strings.HasPrefix(m, "input_userauth_request: invalid user ") {
			u := strings.TrimSuffix(trimSpace(m[len("input_userauth_request: invalid user "):]), "[preauth]")
			r.Set(UserName, trimSpace(u))
			r.setExtra("user.invalid", "true")
			sshAction(r, "sshd_invalid_user_request", "failure")
			ok = true
		}
	case 'r':
		if strings.HasPrefix(m, "reverse mapping checking getaddrinfo for ") {
			ok = sshReverse(m, r)
		} else if strings.HasPrefix(m, "refused connect from ") {
			rest := m[len("refused connect from "):]
			if i := strings.LastIndexByte(rest, '('); i >= 0 {
				setHost(r, strings.TrimSuffix(rest[i+1:], ")"))
				sshAction(r, ActSSHNotAllowed, "failure")
				ok = true
			}
		}
	case 'N':
		if strings.HasPrefix(m, "no matching ") {
			sshAction(r, ActSSHKexError, "failure")
			ok = true
		}
	}
	if !ok && strings.Contains(m, "Unable to negotiate") {
		ok = sshNegotiate(m, r)
	}
	if ok {
		r.Decoded = true
	}
}

func sshAction(r *Record, action, outcome string) {
	r.Set(EventAction, action)
	r.Set(EventCategory, "authentication")
	if outcome != "" {
		r.Set(EventOutcome, outcome)
	}
}

func sshDisconnectAction(r *Record, preauth bool) {
	if preauth {
		sshAction(r, ActSSHPreauthDisc, "failure")
	} else {
		sshAction(r, ActSSHDisconnect, "")
	}
}

// sshFailedAccepted handles "Failed|Accepted|Postponed <method> for
// [invalid user ]<user> from <host> port <n> ssh2[: key]".
func sshFailedAccepted(m, prefix, action, outcome string, r *Record) bool {
	if !strings.HasPrefix(m, prefix) {
		return false
	}
	rest := m[len(prefix):]
	sp := strings.Index(rest, " for ")
	if sp < 0 {
		return false
	}
	r.Set(AuthMethod, rest[:sp])
	rest = rest[sp+5:]
	if strings.HasPrefix(rest, "invalid user ") {
		rest = rest[len("invalid user "):]
		r.setExtra("user.invalid", "true")
	} else if strings.HasPrefix(rest, "illegal user ") {
		rest = rest[len("illegal user "):]
		r.setExtra("user.invalid", "true")
	}
	if !sshUserFrom(rest, r) {
		return false
	}
	sshAction(r, action, outcome)
	return true
}

// sshUserFrom parses "<user> from <host>[ port N][ sshN][: …]". The user
// name is client-controlled and may itself contain " from … port …", so the
// first " from " whose tail has the exact shape sshd writes wins.
func sshUserFrom(s string, r *Record) bool {
	off := 0
	for {
		i := strings.Index(s[off:], " from ")
		if i < 0 {
			// "Invalid user  from" has an empty user: s starts with "from ".
			if off == 0 && strings.HasPrefix(s, "from ") {
				if host, port, ok := hostTail(s[5:]); ok {
					r.Set(UserName, "")
					setHost(r, host)
					if port != "" {
						r.Set(SourcePort, port)
					}
					return true
				}
			}
			return false
		}
		i += off
		if host, port, ok := hostTail(s[i+6:]); ok {
			r.Set(UserName, s[:i])
			setHost(r, host)
			if port != "" {
				r.Set(SourcePort, port)
			}
			return true
		}
		off = i + 1
	}
}

// hostTail checks that s is "<host>[ port N][ on H port N][ sshN][ [preauth]]
// [: …| via …]" and returns host and port.
func hostTail(s string) (host, port string, ok bool) {
	sp := strings.IndexByte(s, ' ')
	host, rest := s, ""
	if sp >= 0 {
		host, rest = s[:sp], s[sp:]
	}
	if host == "" {
		return "", "", false
	}
	if strings.HasSuffix(host, ":") && (rest == "" || rest[0] == ' ') {
		// "Received disconnect from 1.2.3.4: 11: Bye"
		return strings.TrimSuffix(host, ":"), "", true
	}
	if strings.HasPrefix(rest, " port ") {
		p := rest[6:]
		n := 0
		for n < len(p) && p[n] >= '0' && p[n] <= '9' {
			n++
		}
		if n == 0 {
			return "", "", false
		}
		port, rest = p[:n], p[n:]
	}
	if strings.HasPrefix(rest, " on ") {
		// "Connection from H port N on LOCAL port 22 [rdomain …]"
		return host, port, true
	}
	if strings.HasPrefix(rest, " ssh") && len(rest) >= 5 && rest[4] >= '0' && rest[4] <= '9' {
		rest = rest[5:]
	}
	switch {
	case rest == "", rest[0] == ':', strings.HasPrefix(rest, " [preauth]"), strings.HasPrefix(rest, " via "):
		return host, port, true
	}
	if trimSpace(rest) == "" {
		return host, port, true
	}
	return "", "", false
}

// sshFrom parses " from <host>[ port N]…" (s starts at " from ").
func sshFrom(s string, r *Record) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, " from "), "from ")
	host, port, ok := hostTail(s)
	if !ok {
		host = firstWord(s)
	}
	setHost(r, host)
	if port != "" {
		r.Set(SourcePort, port)
	}
}

// sshLastFrom takes the host from the last " from " of a line whose earlier
// part quotes client data.
func sshLastFrom(m string, r *Record) {
	i := strings.LastIndex(m, " from ")
	if i >= 0 {
		sshFrom(m[i:], r)
	}
}

// sshInvalid handles "Invalid user <user> from <host>[ port N]".
func sshInvalid(m, prefix string, r *Record) bool {
	if !strings.HasPrefix(m, prefix) {
		return false
	}
	if !sshUserFrom(m[len(prefix):], r) {
		return false
	}
	r.setExtra("user.invalid", "true")
	sshAction(r, ActSSHInvalidUser, "failure")
	return true
}

// sshUserNotAllowed handles "User <u> from <host> not allowed because …"
// and "User <u> not allowed because account is locked".
func sshUserNotAllowed(m string, r *Record) bool {
	if !strings.HasPrefix(m, "User ") {
		return false
	}
	rest := m[5:]
	i := strings.Index(rest, " not allowed because ")
	if i < 0 {
		return false
	}
	who := rest[:i]
	if j := strings.Index(who, " from "); j >= 0 {
		r.Set(UserName, who[:j])
		setHost(r, who[j+6:])
	} else {
		r.Set(UserName, who)
	}
	r.setExtra("sshd.reason", rest[i+len(" not allowed because "):])
	sshAction(r, ActSSHNotAllowed, "failure")
	return true
}

// sshUserHostPort parses the disconnect forms "[invalid |authenticating
// ]user <u> <host> port <n>[…]" and "<host>[ port <n>][ [preauth]]": the
// host is the word before the last " port N", or the first word.
func sshUserHostPort(s string, r *Record) bool {
	s = trimSpace(s)
	body := strings.TrimSuffix(s, "[preauth]")
	body = trimSpace(body)
	if i := strings.LastIndex(body, " port "); i > 0 {
		// Cut ": reason" after the port.
		p := body[i+6:]
		n := 0
		for n < len(p) && p[n] >= '0' && p[n] <= '9' {
			n++
		}
		if n > 0 && (n == len(p) || p[n] == ':') {
			head := body[:i]
			h := strings.LastIndexByte(head, ' ')
			host := head[h+1:]
			setHost(r, host)
			r.Set(SourcePort, p[:n])
			if h > 0 {
				sshDisconnectUser(head[:h], r)
			}
			return true
		}
	}
	if body == "" {
		return false
	}
	setHost(r, strings.TrimSuffix(firstWord(body), ":"))
	return true
}

func sshDisconnectUser(who string, r *Record) {
	switch {
	case strings.HasPrefix(who, "invalid user "):
		r.Set(UserName, who[len("invalid user "):])
		r.setExtra("user.invalid", "true")
	case strings.HasPrefix(who, "authenticating user "):
		r.Set(UserName, who[len("authenticating user "):])
	case strings.HasPrefix(who, "user "):
		r.Set(UserName, who[len("user "):])
	}
}

// sshDisconnect handles the tail of "Received disconnect from <host>[ port
// N]:<code>: <reason>".
func sshDisconnect(s string, preauth bool, r *Record) bool {
	host, port, ok := hostTail(s)
	if !ok {
		return false
	}
	setHost(r, host)
	if port != "" {
		r.Set(SourcePort, port)
	}
	sshDisconnectAction(r, preauth)
	return true
}

// sshPAMError handles "PAM: Authentication failure for <u> from <host>"
// and the "authentication error" / "User not known" variants.
func sshPAMError(m string, r *Record) bool {
	i := strings.Index(m, " for ")
	if i < 0 {
		return false
	}
	rest := m[i+5:]
	rest = strings.TrimPrefix(rest, "illegal user ")
	if !sshUserFrom(trimSpace(rest), r) {
		return false
	}
	sshAction(r, ActSSHPAMFailure, "failure")
	return true
}

// sshNegotiate handles "Unable to negotiate with <host> port <n>: no
// matching …" and the host-less "Unable to negotiate a key exchange method".
func sshNegotiate(m string, r *Record) bool {
	i := strings.Index(m, "Unable to negotiate")
	if i < 0 {
		return false
	}
	rest := m[i+len("Unable to negotiate"):]
	if strings.HasPrefix(rest, " with ") {
		rest = rest[6:]
		host, port, ok := hostTail(rest)
		if ok {
			setHost(r, host)
			if port != "" {
				r.Set(SourcePort, port)
			}
		}
	}
	sshAction(r, ActSSHKexError, "failure")
	return true
}

// sshReverse handles "reverse mapping checking getaddrinfo for N [ip] failed
// - POSSIBLE BREAK-IN ATTEMPT!" and "Address ip maps to N, but this does not
// map back to the address - POSSIBLE BREAK-IN ATTEMPT!".
func sshReverse(m string, r *Record) bool {
	switch {
	case strings.HasPrefix(m, "reverse mapping checking getaddrinfo for "):
		i := strings.IndexByte(m, '[')
		j := strings.IndexByte(m, ']')
		if i < 0 || j < i {
			return false
		}
		setHost(r, m[i+1:j])
	case strings.HasPrefix(m, "Address ") && strings.Contains(m, "POSSIBLE BREAK-IN"):
		setHost(r, firstWord(m[len("Address "):]))
	default:
		return false
	}
	sshAction(r, ActSSHReverseMap, "")
	return true
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}
