package decode

import (
	"encoding/hex"
	"strings"
	"time"
)

// decodeAudit parses one auditd record:
//
//	type=SYSCALL msg=audit(1364481363.243:24287): arch=c000003e … exe="/bin/cat" key="x"
//
// Values are unquoted; hex-encoded values (auditd writes untrusted strings
// as hex) are decoded. Grouping the records of one event is done by Grouper.
func decodeAudit(line string, r *Record) bool {
	if !strings.HasPrefix(line, "type=") {
		return false
	}
	sp := strings.IndexByte(line, ' ')
	if sp < 0 {
		return false
	}
	typ := line[5:sp]
	rest := line[sp+1:]
	if !strings.HasPrefix(rest, "msg=audit(") {
		return false
	}
	end := strings.Index(rest, "):")
	if end < 0 {
		return false
	}
	id := rest[len("msg=audit("):end]
	stamp, _, _ := strings.Cut(id, ":")
	sec, frac, _ := strings.Cut(stamp, ".")
	var s, ms int64
	for _, c := range sec {
		s = s*10 + int64(c-'0')
	}
	for i, c := range frac {
		if i < 3 {
			ms = ms*10 + int64(c-'0')
		}
	}
	r.Time = time.Unix(s, ms*int64(time.Millisecond)).UTC()
	r.Format = "auditd"
	r.Product = "linux"
	r.Service = "auditd"
	r.SetExtra("type", typ)
	r.SetExtra("audit.id", id)
	body := trimSpace(rest[end+2:])
	// log_format=ENRICHED appends the interpreted fields (SYSCALL=, AUID=,
	// …) after a group separator.
	if strings.IndexByte(body, 0x1d) >= 0 {
		body = strings.ReplaceAll(body, "\x1d", " ")
	}
	// USER_* records nest the interesting part in msg='…'.
	if i := strings.Index(body, "msg='"); i >= 0 {
		inner := body[i+5:]
		inner = strings.TrimSuffix(inner, "'")
		body = body[:i] + " " + inner
	}
	auditKVs(body, r)
	if v, ok := r.Extra("addr"); ok && v != "?" && v != "" {
		setHost(r, v)
	}
	if v, ok := r.Extra("acct"); ok {
		r.Set(UserName, v)
	}
	if v, ok := r.Extra("res"); ok {
		if v == "success" || v == "yes" {
			r.Set(EventOutcome, "success")
		} else {
			r.Set(EventOutcome, "failure")
		}
	}
	r.Set(Message, body)
	r.Decoded = true
	return true
}

func auditKVs(s string, r *Record) {
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return
		}
		k := s[:eq]
		if i := strings.LastIndexByte(k, ' '); i >= 0 {
			k = k[i+1:]
		}
		s = s[eq+1:]
		var v string
		if strings.HasPrefix(s, "\"") {
			e := strings.IndexByte(s[1:], '"')
			if e < 0 {
				v, s = s[1:], ""
			} else {
				v, s = s[1:1+e], s[2+e:]
			}
		} else {
			e := strings.IndexByte(s, ' ')
			if e < 0 {
				v, s = s, ""
			} else {
				v, s = s[:e], s[e+1:]
			}
			v = unhexAudit(k, v)
		}
		r.SetExtra(k, v)
	}
}

// unhexAudit decodes the fields auditd hex-encodes when they hold spaces or
// control bytes (proctitle, argN, name, exe, comm, cmd, data).
func unhexAudit(k, v string) string {
	switch {
	case k == "proctitle" || k == "name" || k == "exe" || k == "comm" || k == "cmd" || k == "data" || k == "cwd" ||
		len(k) >= 2 && k[0] == 'a' && k[1] >= '0' && k[1] <= '9':
	default:
		return v
	}
	if len(v) < 2 || len(v)%2 != 0 {
		return v
	}
	for i := 0; i < len(v); i++ {
		if !(v[i] >= '0' && v[i] <= '9' || v[i] >= 'A' && v[i] <= 'F') {
			return v
		}
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		return v
	}
	for i := range b {
		if b[i] == 0 {
			b[i] = ' '
		}
	}
	return string(b)
}

// Grouper carries the context of an auditd event (its SYSCALL record's
// exe, comm, uid, key …) to the later records of the same event (EXECVE,
// PATH, PROCTITLE), so a rule on one record type can also test the
// process that caused it.
type Grouper struct {
	id  string
	ctx []KV
}

// Apply adds the event context to r (fields r already has win) and
// remembers r's fields for the event's next records.
func (g *Grouper) Apply(r *Record) {
	if r.Format != "auditd" {
		return
	}
	id, _ := r.Extra("audit.id")
	if id != g.id {
		g.id = strings.Clone(id)
		g.ctx = g.ctx[:0]
	}
	for _, kv := range g.ctx {
		if _, ok := r.Lookup(kv.Key); !ok {
			r.SetExtra(kv.Key, kv.Value)
		}
	}
	for _, kv := range r.extra {
		if kv.Key == "type" || kv.Key == "audit.id" || kv.Key == "msg" {
			continue
		}
		g.set(kv.Key, kv.Value)
	}
	for _, k := range []Field{UserName, SourceIP, EventOutcome} {
		if v, ok := r.Get(k); ok {
			g.set(k.Name(), v)
		}
	}
}

func (g *Grouper) set(k, v string) {
	for i := range g.ctx {
		if g.ctx[i].Key == k {
			g.ctx[i].Value = strings.Clone(v)
			return
		}
	}
	g.ctx = append(g.ctx, KV{strings.Clone(k), strings.Clone(v)})
}
