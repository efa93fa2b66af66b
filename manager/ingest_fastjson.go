package manager

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mamori-sec/mamori/event"
)

// fastEvent decodes one event object written the plain way agents write
// it — keys spelled exactly as event.Event's tags, each once, no nulls, no
// escapes in strings, integers as plain digits — into e, several times
// faster than encoding/json's reflection (which was most of the manager's
// ingest CPU). For anything outside that subset it returns false and the
// caller decodes the object with encoding/json, so the result never
// depends on which decoder ran (FuzzDecodeBatch compares the two).
func fastEvent(b []byte, e *event.Event) bool {
	l := lexer{b: b}
	var seen uint32
	ok := l.object(func(k string) bool {
		bit, ok := eventKeys[k]
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		switch k {
		case "id":
			e.ID, ok = l.str()
		case "time":
			ok = l.time(&e.Time)
		case "kind":
			var s string
			s, ok = l.str()
			e.Kind = event.Kind(s)
		case "severity":
			var s string
			if s, ok = l.str(); ok {
				ok = e.Severity.UnmarshalText([]byte(s)) == nil
			}
		case "module":
			e.Module, ok = l.str()
		case "host":
			e.Host, ok = l.str()
		case "computer_id":
			e.ComputerID, ok = l.str()
		case "message":
			e.Message, ok = l.str()
		case "action":
			e.Action, ok = l.str()
		case "protocol":
			e.Protocol, ok = l.str()
		case "raw":
			e.Raw, ok = l.str()
		case "count":
			var n int64
			n, ok = l.int()
			e.Count = int(n)
		case "rule":
			e.Rule = new(event.Rule)
			ok = l.rule(e.Rule)
		case "src":
			e.Src = new(event.Endpoint)
			ok = l.endpoint(e.Src)
		case "dst":
			e.Dst = new(event.Endpoint)
			ok = l.endpoint(e.Dst)
		case "file":
			e.File = new(event.File)
			ok = l.file(e.File)
		case "process":
			e.Process = new(event.Process)
			ok = l.process(e.Process)
		case "user":
			e.User = new(event.User)
			ok = l.user(e.User)
		case "dns":
			e.DNS = new(event.DNS)
			ok = l.strFields(map[string]*string{"query": &e.DNS.Query, "type": &e.DNS.Type, "rcode": &e.DNS.RCode})
		case "http":
			e.HTTP = new(event.HTTP)
			ok = l.http(e.HTTP)
		case "cloud":
			c := new(event.Cloud)
			e.Cloud = c
			ok = l.strFields(map[string]*string{"provider": &c.Provider, "account": &c.Account, "region": &c.Region,
				"resource_type": &c.ResourceType, "resource_id": &c.ResourceID, "name": &c.Name})
		case "changes":
			e.Changes = []event.Change{}
			ok = l.array(func() bool {
				var c event.Change
				if !l.strFields(map[string]*string{"attr": &c.Attr, "old": &c.Old, "new": &c.New}) {
					return false
				}
				e.Changes = append(e.Changes, c)
				return true
			})
		case "evidence":
			e.Evidence, ok = l.strs()
		case "fields":
			e.Fields, ok = l.strMap()
		}
		return ok
	})
	l.ws()
	return ok && l.i == len(b)
}

var eventKeys = func() map[string]uint32 {
	m := map[string]uint32{}
	for i, k := range []string{"id", "time", "kind", "severity", "module", "host", "computer_id", "message", "action",
		"rule", "src", "dst", "protocol", "file", "process", "user", "http", "dns", "cloud", "changes", "evidence", "count", "raw", "fields"} {
		m[k] = 1 << i
	}
	return m
}()

// lexer reads the plain subset of JSON fastEvent takes; every method
// returns false at the first thing outside it.
type lexer struct {
	b []byte
	i int
}

func (l *lexer) ws() { l.i = skipWS(l.b, l.i) }

func (l *lexer) next(c byte) bool {
	l.ws()
	if l.i < len(l.b) && l.b[l.i] == c {
		l.i++
		return true
	}
	return false
}

// scanStr reads a string token: raw is it with its quotes; plain says it
// has no escapes and is valid UTF-8, so its bytes are its value. Control
// characters are refused, as JSON does.
func (l *lexer) scanStr() (raw []byte, plain, ok bool) {
	if !l.next('"') {
		return nil, false, false
	}
	start := l.i - 1
	plain = true
	ascii := true
	for ; l.i < len(l.b); l.i++ {
		c := l.b[l.i]
		switch {
		case c == '"':
			l.i++
			raw = l.b[start:l.i]
			return raw, plain && (ascii || utf8.Valid(raw)), true
		case c == '\\':
			plain = false
			l.i++
		case c < 0x20:
			return nil, false, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false, false
}

// str reads a string value. One with escapes (Go escapes <, > and & in
// every string it encodes) or invalid UTF-8 is unquoted by encoding/json
// itself, so \u escapes, surrogates and replacement characters come out
// exactly as they would have.
func (l *lexer) str() (string, bool) {
	raw, plain, ok := l.scanStr()
	switch {
	case !ok:
		return "", false
	case plain:
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// key reads an object key; only plain ones (encoding/json matches keys
// after unescaping them, which fastEvent leaves to it).
func (l *lexer) key() (string, bool) {
	raw, plain, ok := l.scanStr()
	if !ok || !plain {
		return "", false
	}
	// A map lookup by string(bytes) does not allocate: known keys, nearly
	// all of them, come back as the one shared string.
	if k, ok := eventJSONKeys[string(raw[1:len(raw)-1])]; ok {
		return k, true
	}
	return string(raw[1 : len(raw)-1]), true
}

// eventJSONKeys holds every JSON key of event.Event and the types it
// contains.
var eventJSONKeys = func() map[string]string {
	m := map[string]string{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				m[name] = name
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[event.Event]())
	return m
}()

func (l *lexer) time(t *time.Time) bool {
	raw, _, ok := l.scanStr()
	// The very method encoding/json calls, on the same bytes.
	return ok && t.UnmarshalJSON(raw) == nil
}

// digits reads -?(0|[1-9][0-9]*) of at most 18 digits (so any int64 or
// uint64 holds it), not followed by a fraction or exponent.
func (l *lexer) digits(signed bool) (string, bool) {
	l.ws()
	start := l.i
	if signed && l.i < len(l.b) && l.b[l.i] == '-' {
		l.i++
	}
	d := l.i
	for l.i < len(l.b) && l.b[l.i] >= '0' && l.b[l.i] <= '9' {
		l.i++
	}
	n := l.i - d
	if n == 0 || n > 18 || (n > 1 && l.b[d] == '0') {
		return "", false
	}
	if l.i < len(l.b) && (l.b[l.i] == '.' || l.b[l.i] == 'e' || l.b[l.i] == 'E') {
		return "", false
	}
	return string(l.b[start:l.i]), true
}

func (l *lexer) int() (int64, bool) {
	s, ok := l.digits(true)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func (l *lexer) uint() (uint64, bool) {
	s, ok := l.digits(false)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func (l *lexer) intPtr() (*int, bool) {
	n, ok := l.int()
	v := int(n)
	return &v, ok
}

// object reads {"key": value, …}; field reads each value.
func (l *lexer) object(field func(key string) bool) bool {
	if !l.next('{') {
		return false
	}
	if l.next('}') {
		return true
	}
	for {
		k, ok := l.key()
		if !ok || !l.next(':') || !field(k) {
			return false
		}
		if l.next(',') {
			continue
		}
		return l.next('}')
	}
}

func (l *lexer) array(elem func() bool) bool {
	if !l.next('[') {
		return false
	}
	if l.next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if l.next(',') {
			continue
		}
		return l.next(']')
	}
}

func (l *lexer) strs() ([]string, bool) {
	out := []string{}
	ok := l.array(func() bool {
		s, ok := l.str()
		out = append(out, s)
		return ok
	})
	return out, ok
}

func (l *lexer) strMap() (map[string]string, bool) {
	m := map[string]string{}
	ok := l.object(func(k string) bool {
		if _, dup := m[k]; dup {
			return false
		}
		v, ok := l.str()
		m[k] = v
		return ok
	})
	return m, ok
}

// strFields reads an object whose fields are all strings.
func (l *lexer) strFields(fields map[string]*string) bool {
	return l.objectOnce(func(k string) bool {
		p, ok := fields[k]
		if !ok {
			return false
		}
		*p, ok = l.str()
		return ok
	})
}

// objectOnce is object refusing a key given twice, as the strict decode
// does.
func (l *lexer) objectOnce(field func(key string) bool) bool {
	seen := map[string]bool{}
	return l.object(func(k string) bool {
		if seen[k] {
			return false
		}
		seen[k] = true
		return field(k)
	})
}

func (l *lexer) rule(r *event.Rule) bool {
	return l.objectOnce(func(k string) bool {
		var ok bool
		switch k {
		case "id":
			r.ID, ok = l.str()
		case "name":
			r.Name, ok = l.str()
		case "source":
			r.Source, ok = l.str()
		case "version":
			r.Version, ok = l.str()
		case "author":
			r.Author, ok = l.str()
		case "tags":
			r.Tags, ok = l.strs()
		case "refs":
			r.Refs, ok = l.strs()
		}
		return ok
	})
}

func (l *lexer) endpoint(p *event.Endpoint) bool {
	return l.objectOnce(func(k string) bool {
		var ok bool
		switch k {
		case "ip":
			p.IP, ok = l.str()
		case "port":
			var n int64
			n, ok = l.int()
			p.Port = int(n)
		case "hostname":
			p.Hostname, ok = l.str()
		case "interface":
			p.Interface, ok = l.str()
		}
		return ok
	})
}

func (l *lexer) file(f *event.File) bool {
	return l.objectOnce(func(k string) bool {
		var ok bool
		switch k {
		case "path":
			f.Path, ok = l.str()
		case "size":
			f.Size, ok = l.int()
		case "mode":
			f.Mode, ok = l.str()
		case "uid":
			f.UID, ok = l.intPtr()
		case "gid":
			f.GID, ok = l.intPtr()
		case "owner":
			f.Owner, ok = l.str()
		case "inode":
			f.Inode, ok = l.uint()
		case "mtime":
			f.MTime = new(time.Time)
			ok = l.time(f.MTime)
		case "hashes":
			f.Hashes, ok = l.strMap()
		case "type":
			f.Type, ok = l.str()
		case "inner":
			f.Inner, ok = l.str()
		}
		return ok
	})
}

func (l *lexer) process(p *event.Process) bool {
	return l.objectOnce(func(k string) bool {
		var ok bool
		var n int64
		switch k {
		case "pid":
			n, ok = l.int()
			p.PID = int(n)
		case "ppid":
			n, ok = l.int()
			p.PPID = int(n)
		case "exe":
			p.Exe, ok = l.str()
		case "cmdline":
			p.Cmdline, ok = l.str()
		case "uid":
			p.UID, ok = l.intPtr()
		case "user":
			p.User, ok = l.str()
		}
		return ok
	})
}

func (l *lexer) user(u *event.User) bool {
	return l.objectOnce(func(k string) bool {
		var ok bool
		switch k {
		case "name":
			u.Name, ok = l.str()
		case "uid":
			u.UID, ok = l.intPtr()
		}
		return ok
	})
}

func (l *lexer) http(h *event.HTTP) bool {
	return l.objectOnce(func(k string) bool {
		var ok bool
		switch k {
		case "method":
			h.Method, ok = l.str()
		case "url":
			h.URL, ok = l.str()
		case "host":
			h.Host, ok = l.str()
		case "user_agent":
			h.UserAgent, ok = l.str()
		case "status":
			var n int64
			n, ok = l.int()
			h.Status = int(n)
		}
		return ok
	})
}
