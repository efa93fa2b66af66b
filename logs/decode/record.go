// Package decode turns raw log lines (syslog RFC 3164/5424, sshd, PAM, sudo,
// su, account tools, systemd-logind, cron, web access and error logs, auditd,
// and user-defined formats) into Records whose fields carry Sigma/ECS names,
// so that rules written against those names match whatever the source was.
// The hot formats (syslog header, sshd) are scanned by hand, without regexp
// and without per-line allocations beyond the line itself.
package decode

import "time"

// Field is the index of a well-known field in a Record. Well-known fields
// live in a fixed array so that a compiled rule reads them by index.
type Field uint8

// Well-known fields, named after ECS (which the Sigma taxonomy follows for
// Linux and web logs).
const (
	FieldNone Field = iota
	EventAction
	EventOutcome
	EventCategory
	SourceIP
	SourcePort
	SourceDomain
	UserName
	UserTarget
	AuthMethod
	ProcessName
	ProcessPID
	ProcessCommandLine
	ProcessWorkingDir
	ProcessTTY
	HostName
	Message
	LogLevel
	GroupName
	URLOriginal
	URLPath
	URLQuery
	HTTPMethod
	HTTPVersion
	HTTPStatus
	HTTPBytes
	HTTPReferrer
	UserAgent
	ErrorMessage
	numFields
)

var fieldNames = [numFields]string{
	FieldNone:          "",
	EventAction:        "event.action",
	EventOutcome:       "event.outcome",
	EventCategory:      "event.category",
	SourceIP:           "source.ip",
	SourcePort:         "source.port",
	SourceDomain:       "source.domain",
	UserName:           "user.name",
	UserTarget:         "user.target.name",
	AuthMethod:         "auth.method",
	ProcessName:        "process.name",
	ProcessPID:         "process.pid",
	ProcessCommandLine: "process.command_line",
	ProcessWorkingDir:  "process.working_directory",
	ProcessTTY:         "process.tty",
	HostName:           "host.hostname",
	Message:            "message",
	LogLevel:           "log.level",
	GroupName:          "group.name",
	URLOriginal:        "url.original",
	URLPath:            "url.path",
	URLQuery:           "url.query",
	HTTPMethod:         "http.request.method",
	HTTPVersion:        "http.version",
	HTTPStatus:         "http.response.status_code",
	HTTPBytes:          "http.response.body.bytes",
	HTTPReferrer:       "http.request.referrer",
	UserAgent:          "user_agent.original",
	ErrorMessage:       "error.message",
}

// aliases maps field names used by SigmaHQ rules (W3C web log names, a few
// generic ones) to ours, so those rules need no per-backend pipeline.
var aliases = map[string]Field{
	"c-ip":        SourceIP,
	"clientip":    SourceIP,
	"src_ip":      SourceIP,
	"cs-uri":      URLOriginal,
	"cs-uri-stem": URLPath,
	// SigmaHQ's webserver rules put patterns that may sit anywhere in the
	// request target under cs-uri-query; matching the whole target (path
	// and query) catches them in both places.
	"cs-uri-query":      URLOriginal,
	"cs-method":         HTTPMethod,
	"sc-status":         HTTPStatus,
	"cs-user-agent":     UserAgent,
	"cs-useragent":      UserAgent,
	"c-useragent":       UserAgent,
	"cs-referer":        HTTPReferrer,
	"cs-referrer":       HTTPReferrer,
	"cs-version":        HTTPVersion,
	"sc-bytes":          HTTPBytes,
	"User":              UserName,
	"user":              UserName,
	"pam_user":          UserName,
	"pam_rhost":         SourceIP,
	"CommandLine":       ProcessCommandLine,
	"CurrentDirectory":  ProcessWorkingDir,
	"host":              HostName,
	"Hostname":          HostName,
	"msg":               Message,
	"Message":           Message,
	"process":           ProcessName,
	"ProcessName":       ProcessName,
	"source.address":    SourceIP,
	"client.ip":         SourceIP,
	"http.method":       HTTPMethod,
	"http.status_code":  HTTPStatus,
	"user_agent":        UserAgent,
	"url":               URLOriginal,
	"service.name":      ProcessName,
	"event.type":        EventCategory,
	"event.kind":        EventCategory,
	"http.request.body": URLQuery,
}

// FieldByName resolves a field name (ours or a known alias) to a well-known
// field, or FieldNone when the name is only found among a Record's extras.
func FieldByName(name string) Field {
	return fieldIndex[name]
}

var fieldIndex = func() map[string]Field {
	m := make(map[string]Field, len(fieldNames)+len(aliases))
	for f, n := range aliases {
		m[f] = n
	}
	for i, n := range fieldNames {
		if i > 0 {
			m[n] = Field(i)
		}
	}
	return m
}()

// Name returns the field's ECS name.
func (f Field) Name() string {
	if f >= numFields {
		return ""
	}
	return fieldNames[f]
}

// KV is one extra field that is not well known (auditd keys, user-defined
// decoder groups, JSON members).
type KV struct{ Key, Value string }

// Record is one decoded log line. Records are reused by the engine: Reset
// keeps the extras' backing array so steady-state decoding does not allocate.
type Record struct {
	Time time.Time
	// Product, Service and Category are the Sigma logsource of the record:
	// linux/sshd, linux/sudo, linux/auditd, web access logs as category
	// "webserver" …
	Product  string
	Service  string
	Category string
	// Raw is the whole line as read; keyword rules search it.
	Raw string
	// Format names the decoder that recognised the line ("rfc3164",
	// "rfc5424", "access", "auditd", a user decoder's name …); empty when
	// the line was not recognised.
	Format string
	// Decoded is true when a service decoder understood the message, not
	// only the envelope.
	Decoded bool
	// Repeat is N for syslog's "message repeated N times: [ … ]": the
	// record stands for N events (0 and 1 mean one).
	Repeat int

	set   uint64
	vals  [numFields]string
	extra []KV
}

// Reset clears the record for reuse.
func (r *Record) Reset() {
	r.Time = time.Time{}
	r.Product, r.Service, r.Category, r.Raw, r.Format = "", "", "", "", ""
	r.Decoded = false
	r.Repeat = 0
	if r.set != 0 {
		r.vals = [numFields]string{}
		r.set = 0
	}
	r.extra = r.extra[:0]
}

// Set stores a well-known field.
func (r *Record) Set(f Field, v string) {
	r.vals[f] = v
	r.set |= 1 << f
}

// Get returns a well-known field and whether it is present.
func (r *Record) Get(f Field) (string, bool) {
	return r.vals[f], r.set&(1<<f) != 0
}

// SetExtra stores a field that is not well known; a later value for the same
// key replaces the earlier one.
func (r *Record) SetExtra(k, v string) {
	if f := FieldByName(k); f != FieldNone {
		r.Set(f, v)
		return
	}
	for i := range r.extra {
		if r.extra[i].Key == k {
			r.extra[i].Value = v
			return
		}
	}
	r.extra = append(r.extra, KV{k, v})
}

// setExtra stores an extra field whose key is known not to be a
// well-known field (decoders' own keys), skipping the name lookup.
func (r *Record) setExtra(k, v string) {
	for i := range r.extra {
		if r.extra[i].Key == k {
			r.extra[i].Value = v
			return
		}
	}
	r.extra = append(r.extra, KV{k, v})
}

// Extra returns a field that is not well known.
func (r *Record) Extra(k string) (string, bool) {
	for i := range r.extra {
		if r.extra[i].Key == k {
			return r.extra[i].Value, true
		}
	}
	return "", false
}

// Lookup finds any field by name.
func (r *Record) Lookup(name string) (string, bool) {
	if f := FieldByName(name); f != FieldNone {
		return r.Get(f)
	}
	return r.Extra(name)
}

// Fields returns every present field as a map, for output (not for
// matching: it allocates).
func (r *Record) Fields() map[string]string {
	m := make(map[string]string, 8+len(r.extra))
	for i := Field(1); i < numFields; i++ {
		if r.set&(1<<i) != 0 && i != Message {
			m[fieldNames[i]] = r.vals[i]
		}
	}
	for _, kv := range r.extra {
		m[kv.Key] = kv.Value
	}
	return m
}

// Clone returns a copy that does not share the extras array, for keeping a
// record beyond the next Reset.
func (r *Record) Clone() *Record {
	c := *r
	c.extra = append([]KV(nil), r.extra...)
	return &c
}

// trimSpace is strings.TrimSpace restricted to ASCII blanks, which is all
// log lines use and is cheaper.
func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\r' || s[len(s)-1] == '\n') {
		s = s[:len(s)-1]
	}
	return s
}
