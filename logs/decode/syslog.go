package decode

import (
	"strings"
	"time"
)

// Decoder turns lines into Records. It is not safe for concurrent use (it
// caches the last timestamp); use one per goroutine.
type Decoder struct {
	// Loc is the time zone of timestamps that carry none (RFC 3164);
	// nil means UTC.
	Loc *time.Location
	// Ref is the reference time for RFC 3164 year inference: a timestamp
	// more than a week after Ref is taken to be from the previous year (a
	// December line read in January). Zero means time.Now().
	Ref time.Time
	// Custom decoders are tried before the built-in ones.
	Custom []*Custom

	lastStamp string
	lastTime  time.Time
	refYear   int
	refTime   time.Time
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// Decode fills r from line. It never fails: a line it does not recognise is
// kept as Raw and Message with Format "" so that keyword rules still see it.
func (d *Decoder) Decode(line string, r *Record) {
	r.Reset()
	for len(line) > 0 && (line[len(line)-1] == '\r' || line[len(line)-1] == '\n') {
		line = line[:len(line)-1]
	}
	r.Raw = line
	for _, c := range d.Custom {
		if c.spec.Program == "" && c.decode(line, r) {
			return
		}
	}
	if len(line) > 0 {
		switch c := line[0]; {
		case c == '<':
			if d.decodePRI(line, r) {
				return
			}
		case c >= 'A' && c <= 'S':
			if d.decode3164(line, r) {
				return
			}
		case c >= '0' && c <= '9':
			if d.decodeISO(line, r) || decodeNginxError(line, r) || decodeAccess(line, r) {
				return
			}
		case c == '[':
			if decodeApacheError(line, r) {
				return
			}
		case c == 't':
			if decodeAudit(line, r) {
				return
			}
		}
		if line[0] == ':' || isHexDigit(line[0]) || isAlpha(line[0]) {
			if decodeAccess(line, r) || d.decodeNoStamp(line, r) {
				return
			}
		}
	}
	r.Set(Message, line)
}

// DecodeParts fills r from an already split syslog-like record (journald).
func (d *Decoder) DecodeParts(t time.Time, host, prog, pid, msg, raw string, r *Record) {
	r.Reset()
	r.Raw = raw
	r.Time = t
	r.Format = "journal"
	if host != "" {
		r.Set(HostName, host)
	}
	d.program(prog, pid, msg, r)
}

func (d *Decoder) loc() *time.Location {
	if d.Loc == nil {
		return time.UTC
	}
	return d.Loc
}

// decodePRI handles "<PRI>1 …" (RFC 5424) and "<PRI>Mmm dd …" (RFC 3164
// as sent over the network).
func (d *Decoder) decodePRI(line string, r *Record) bool {
	i := 1
	for i < len(line) && i < 5 && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	if i == 1 || i >= len(line) || line[i] != '>' {
		return false
	}
	rest := line[i+1:]
	if strings.HasPrefix(rest, "1 ") {
		return d.decode5424(rest[2:], r)
	}
	if d.decode3164(rest, r) {
		r.Raw = line
		return true
	}
	return false
}

// decode3164 parses "Mmm dd hh:mm:ss [host] tag[pid]: msg".
func (d *Decoder) decode3164(line string, r *Record) bool {
	if len(line) < 16 || line[3] != ' ' {
		return false
	}
	mon := 0
	for i, m := range months {
		if line[:3] == m {
			mon = i + 1
			break
		}
	}
	if mon == 0 {
		return false
	}
	// Day is " 5", "05" or "5" (some daemons do not pad).
	p := 4
	if line[p] == ' ' {
		p++
	}
	day := 0
	for p < len(line) && line[p] >= '0' && line[p] <= '9' && day < 100 {
		day = day*10 + int(line[p]-'0')
		p++
	}
	if day < 1 || day > 31 || p+9 > len(line) || line[p] != ' ' {
		return false
	}
	p++
	hh, ok1 := num2(line[p:])
	mm, ok2 := num2(line[p+3:])
	ss, ok3 := num2(line[p+6:])
	if !ok1 || !ok2 || !ok3 || line[p+2] != ':' || line[p+5] != ':' || hh > 23 || mm > 59 || ss > 60 {
		return false
	}
	end := p + 8
	// Fractional seconds (rsyslog's high-precision RFC 3164 variant).
	frac := 0
	if end < len(line) && line[end] == '.' {
		end++
		scale := 1000000000
		for end < len(line) && line[end] >= '0' && line[end] <= '9' {
			if scale > 1 {
				scale /= 10
				frac += int(line[end]-'0') * scale
			}
			end++
		}
	}
	stamp := line[:end]
	if stamp == d.lastStamp {
		r.Time = d.lastTime
	} else {
		r.Time = d.inferYear(mon, day, hh, mm, ss, frac)
		d.lastStamp, d.lastTime = stamp, r.Time
	}
	if end >= len(line) || line[end] != ' ' {
		return false
	}
	r.Format = "rfc3164"
	d.decodeHostTag(line[end+1:], r)
	return true
}

func (d *Decoder) inferYear(mon, day, hh, mm, ss, frac int) time.Time {
	ref := d.Ref
	if ref.IsZero() {
		// time.Now per line is cheap but not free; refresh it once a second
		// of log time at most.
		if d.refTime.IsZero() || time.Since(d.refTime) > time.Second {
			d.refTime = time.Now()
		}
		ref = d.refTime
	}
	y := ref.Year()
	t := time.Date(y, time.Month(mon), day, hh, mm, ss, frac, d.loc())
	if t.Sub(ref) > 7*24*time.Hour {
		t = time.Date(y-1, time.Month(mon), day, hh, mm, ss, frac, d.loc())
	}
	return t
}

// decodeISO parses rsyslog's RFC 3339 form: "2015-04-16T18:02:50.32+00:00
// host tag[pid]: msg".
func (d *Decoder) decodeISO(line string, r *Record) bool {
	sp := strings.IndexByte(line, ' ')
	if sp < 19 || line[4] != '-' || line[10] != 'T' {
		return false
	}
	stamp := line[:sp]
	if stamp == d.lastStamp {
		r.Time = d.lastTime
	} else {
		t, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t, err = time.ParseInLocation("2006-01-02T15:04:05.999999999", stamp, d.loc())
			if err != nil {
				return false
			}
		}
		r.Time = t
		d.lastStamp, d.lastTime = stamp, t
	}
	r.Format = "rfc3339"
	d.decodeHostTag(line[sp+1:], r)
	return true
}

// decode5424 parses "TIMESTAMP HOST APP PROCID MSGID SD MSG" (after "<PRI>1 ").
func (d *Decoder) decode5424(s string, r *Record) bool {
	var f [5]string
	for i := range f {
		sp := strings.IndexByte(s, ' ')
		if sp < 0 {
			if i == 4 {
				f[i], s = s, ""
				break
			}
			return false
		}
		f[i], s = s[:sp], s[sp+1:]
	}
	if f[0] != "-" {
		t, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			return false
		}
		r.Time = t
	}
	// Structured data: "-" or one or more [id k="v" …] with \] escapes.
	if strings.HasPrefix(s, "-") {
		s = strings.TrimPrefix(s[1:], " ")
	} else {
		for strings.HasPrefix(s, "[") {
			end := sdEnd(s)
			if end < 0 {
				return false
			}
			s = s[end+1:]
		}
		s = strings.TrimPrefix(s, " ")
	}
	s = strings.TrimPrefix(s, "\ufeff")
	r.Format = "rfc5424"
	if f[1] != "-" {
		r.Set(HostName, f[1])
	}
	app, pid := f[2], f[3]
	if app == "-" {
		app = ""
	}
	if pid == "-" {
		pid = ""
	}
	d.program(app, pid, s, r)
	return true
}

// sdEnd returns the index of the "]" closing the SD element at s[0].
func sdEnd(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ']':
			if !inQuote {
				return i
			}
		}
	}
	return -1
}

// decodeHostTag parses "[host] tag[pid]: msg" after a timestamp. The host is
// absent when the first word already looks like a tag ("sshd[1]:", "[sshd]").
func (d *Decoder) decodeHostTag(s string, r *Record) {
	sp := strings.IndexByte(s, ' ')
	if sp < 0 {
		r.Set(Message, s)
		return
	}
	first := s[:sp]
	if !(strings.HasSuffix(first, ":") || strings.HasSuffix(first, "]") || strings.HasPrefix(first, "[")) {
		r.Set(HostName, first)
		s = s[sp+1:]
	}
	prog, pid, msg, ok := splitTag(s)
	if !ok {
		r.Set(Message, s)
		return
	}
	d.program(prog, pid, msg, r)
}

// program runs the user decoders scoped to prog, then the built-in ones.
func (d *Decoder) program(prog, pid, msg string, r *Record) {
	for _, c := range d.Custom {
		if c.spec.Program != "" && c.spec.Program == prog {
			r.Product = "linux"
			r.Service = prog
			r.Set(ProcessName, prog)
			if pid != "" {
				r.Set(ProcessPID, pid)
			}
			if c.decode(msg, r) {
				r.Set(Message, msg)
				return
			}
		}
	}
	decodeProgram(prog, pid, msg, r)
}

// decodeNoStamp handles "host prog[pid]: msg" without a timestamp, as
// journalctl -o short-unix-less exports and fail2ban's journal tests show.
func (d *Decoder) decodeNoStamp(line string, r *Record) bool {
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	tag := line[sp+1:]
	e := strings.IndexByte(tag, ' ')
	if e < 3 || !strings.HasSuffix(tag[:e], "]:") || strings.IndexByte(tag[:e], '[') <= 0 {
		return false
	}
	r.Format = "syslog_nostamp"
	d.decodeHostTag(line, r)
	return true
}

// splitTag splits "prog[pid]: msg", "prog: msg", "[prog]: msg" and
// "[prog] msg".
func splitTag(s string) (prog, pid, msg string, ok bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", "", false
		}
		prog, msg = s[1:end], s[end+1:]
		msg = strings.TrimPrefix(msg, ":")
		return prog, "", strings.TrimPrefix(msg, " "), true
	}
	for i := 0; i < len(s) && i < 128; i++ {
		switch s[i] {
		case '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return "", "", "", false
			}
			prog, pid = s[:i], s[i+1:i+end]
			rest := s[i+end+1:]
			rest = strings.TrimPrefix(rest, ":")
			return prog, pid, strings.TrimPrefix(rest, " "), true
		case ':':
			return s[:i], "", strings.TrimPrefix(s[i+1:], " "), true
		case ' ':
			return "", "", "", false
		}
	}
	return "", "", "", false
}

func num2(s string) (int, bool) {
	if len(s) < 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
