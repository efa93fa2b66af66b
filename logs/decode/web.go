package decode

import (
	"strings"
	"time"
)

// decodeAccess parses the NCSA common and combined formats written by
// nginx and Apache:
//
//	host ident user [02/Jan/2006:15:04:05 -0700] "GET /p?q HTTP/1.1" 200 123 "ref" "ua"
func decodeAccess(line string, r *Record) bool {
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	host := line[:sp]
	rest := line[sp+1:]
	// ident and user
	for k := 0; k < 2; k++ {
		sp = strings.IndexByte(rest, ' ')
		if sp < 0 {
			return false
		}
		if k == 1 && rest[:sp] != "-" {
			r.Set(UserName, rest[:sp])
		}
		rest = rest[sp+1:]
	}
	if !strings.HasPrefix(rest, "[") {
		// vhost_combined: "vhost host ident user [time] …"
		if r.Format != "vhost" && strings.IndexByte(host, '.') >= 0 {
			r.Format = "vhost"
			if decodeAccess(line[len(host)+1:], r) {
				r.SetExtra("url.domain", host)
				return true
			}
			r.Format = ""
		}
		return false
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return false
	}
	t, err := time.Parse("02/Jan/2006:15:04:05 -0700", rest[1:end])
	if err != nil {
		return false
	}
	rest = strings.TrimPrefix(rest[end+1:], " ")
	if !strings.HasPrefix(rest, "\"") {
		return false
	}
	req, after, ok := quotedField(rest)
	if !ok {
		return false
	}
	r.Time = t
	r.Format = "access"
	r.Category = "webserver"
	setHost(r, host)
	setRequest(req, r)
	f := strings.Fields(after)
	if len(f) >= 1 {
		r.Set(HTTPStatus, f[0])
	}
	if len(f) >= 2 {
		r.Set(HTTPBytes, f[1])
	}
	if i := strings.IndexByte(after, '"'); i >= 0 {
		ref, after2, ok := quotedField(after[i:])
		if ok {
			if ref != "-" {
				r.Set(HTTPReferrer, ref)
			}
			if j := strings.IndexByte(after2, '"'); j >= 0 {
				if ua, _, ok := quotedField(after2[j:]); ok && ua != "-" {
					r.Set(UserAgent, ua)
				}
			}
		}
	}
	r.Set(EventCategory, "web")
	r.Set(Message, req)
	r.Decoded = true
	return true
}

// quotedField reads a "…" field with \" escapes starting at s[0] == '"'.
func quotedField(s string) (val, rest string, ok bool) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return s[1:i], s[i+1:], true
		}
	}
	return "", "", false
}

// setRequest splits "GET /a?b HTTP/1.1"; anything else (TLS bytes sent to a
// plain port, "-") is kept whole as url.original.
func setRequest(req string, r *Record) {
	m, rest, ok := strings.Cut(req, " ")
	if !ok {
		r.Set(URLOriginal, req)
		return
	}
	r.Set(HTTPMethod, m)
	u := rest
	if i := strings.LastIndex(rest, " HTTP/"); i >= 0 {
		u = rest[:i]
		r.Set(HTTPVersion, rest[i+6:])
	}
	r.Set(URLOriginal, u)
	if p, q, ok := strings.Cut(u, "?"); ok {
		r.Set(URLPath, p)
		r.Set(URLQuery, q)
	} else {
		r.Set(URLPath, u)
	}
}

// decodeApacheError parses Apache 2.2 "[Sun Dec 04 04:47:44 2005] [error]
// [client 1.2.3.4] msg" and 2.4 "[Wed Oct 11 14:32:52.123456 2000]
// [core:error] [pid 1:tid 2] [client 1.2.3.4:5] AH00128: msg" lines.
func decodeApacheError(line string, r *Record) bool {
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return false
	}
	stamp := line[1:end]
	t, err := time.Parse("Mon Jan 02 15:04:05.999999 2006", stamp)
	if err != nil {
		t, err = time.Parse("Mon Jan _2 15:04:05 2006", stamp)
		if err != nil {
			return false
		}
	}
	r.Time = t
	r.Format = "apache_error"
	r.Product = "apache"
	r.Service = "error"
	r.Category = "webserver_error"
	decodeApacheTags(strings.TrimPrefix(line[end+1:], " "), r)
	return true
}

// decodeApacheTags parses "[level] [pid N] [client H:P] msg".
func decodeApacheTags(rest string, r *Record) {
	for strings.HasPrefix(rest, "[") {
		e := strings.IndexByte(rest, ']')
		if e < 0 {
			break
		}
		tag := rest[1:e]
		switch {
		case strings.HasPrefix(tag, "client "), strings.HasPrefix(tag, "remote "):
			c := tag[7:]
			if strings.HasPrefix(c, "[") {
				// "[2001:db8::1]:51548": the tag's own "]" ended early.
				close := strings.IndexByte(rest, ']')
				close2 := strings.IndexByte(rest[close+1:], ']')
				c = rest[len("[client ")+1 : close]
				e = close + 1 + close2
			} else if strings.Count(c, ":") == 1 {
				c = c[:strings.IndexByte(c, ':')]
			}
			setHost(r, c)
		case strings.HasPrefix(tag, "pid "):
			r.Set(ProcessPID, strings.TrimPrefix(tag, "pid "))
		default:
			lv := tag
			if i := strings.IndexByte(tag, ':'); i >= 0 {
				lv = tag[i+1:]
			}
			r.Set(LogLevel, lv)
		}
		rest = strings.TrimPrefix(rest[e+1:], " ")
	}
	r.Set(Message, rest)
	r.Set(ErrorMessage, rest)
	r.Decoded = true
}

// decodeWebInSyslog handles web server error lines sent through syslog.
func decodeWebInSyslog(msg string, r *Record) {
	switch {
	case strings.HasPrefix(msg, "["):
		r.Product, r.Service, r.Category = "apache", "error", "webserver_error"
		decodeApacheTags(msg, r)
	case decodeNginxError(msg, r):
	}
}

// decodeNginxError parses "2012/04/09 11:53:29 [error] 2865#0: *1 msg,
// client: 1.2.3.4, server: x, request: "GET / HTTP/1.1", host: "x"".
func decodeNginxError(line string, r *Record) bool {
	if len(line) < 21 || line[4] != '/' || line[10] != ' ' || line[19] != ' ' || line[20] != '[' {
		return false
	}
	t, err := time.Parse("2006/01/02 15:04:05", line[:19])
	if err != nil {
		return false
	}
	e := strings.IndexByte(line[20:], ']')
	if e < 0 {
		return false
	}
	r.Time = t
	r.Format = "nginx_error"
	r.Product = "nginx"
	r.Service = "error"
	r.Category = "webserver_error"
	r.Set(LogLevel, line[21:20+e])
	rest := strings.TrimPrefix(line[21+e:], " ")
	if i := strings.Index(rest, ": "); i >= 0 && strings.IndexByte(rest[:i], '#') > 0 {
		r.Set(ProcessPID, rest[:strings.IndexByte(rest, '#')])
		rest = rest[i+2:]
	}
	if strings.HasPrefix(rest, "*") {
		rest = rest[strings.IndexByte(rest+" ", ' ')+1:]
	}
	msg := rest
	if i := strings.LastIndex(rest, ", client: "); i >= 0 {
		msg = rest[:i]
		c := rest[i+len(", client: "):]
		if j := strings.IndexByte(c, ','); j >= 0 {
			c = c[:j]
		}
		setHost(r, c)
	}
	if i := strings.Index(rest, ", request: \""); i >= 0 {
		if req, _, ok := quotedField(rest[i+len(", request: "):]); ok {
			setRequest(req, r)
		}
	}
	r.Set(Message, msg)
	r.Set(ErrorMessage, msg)
	r.Decoded = true
	return true
}
