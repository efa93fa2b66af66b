package event

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// syslogSeverity maps our severity to RFC 5424 severity (0 emerg … 7 debug).
func syslogSeverity(s Severity) int {
	switch s {
	case SeverityCritical:
		return 2
	case SeverityHigh:
		return 3
	case SeverityMedium:
		return 4
	case SeverityLow:
		return 5
	}
	return 6
}

// Syslog formats the event as one RFC 5424 message (facility local0 unless
// given) with payload as the MSG part; payload is usually CEF, LEEF or JSON.
func (e *Event) Syslog(facility int, appName, payload string) string {
	if facility <= 0 {
		facility = 16
	}
	pri := facility*8 + syslogSeverity(e.Severity)
	host := nilDash(e.Host)
	if appName == "" {
		appName = "mamori"
	}
	return fmt.Sprintf("<%d>1 %s %s %s - %s [mamori@53595 id=\"%s\" kind=\"%s\"] %s",
		pri, e.Time.UTC().Format(time.RFC3339Nano), host, appName, sdName(string(e.Kind)),
		sdEscape(e.ID), sdEscape(string(e.Kind)), payload)
}

func nilDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, " ", "_")
}

func sdName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= 32 || r >= 127 || r == '=' || r == ']' || r == '"' {
			return '_'
		}
		return r
	}, s)
	if len(s) > 32 {
		s = s[:32]
	}
	return nilDash(s)
}

func sdEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)
	return r.Replace(s)
}

// cefSeverity maps to CEF's 0–10 scale.
func cefSeverity(s Severity) int {
	return [...]int{0, 1, 3, 5, 8, 10}[min(max(int(s), 0), 5)]
}

func cefHeader(s string) string {
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\n", " ", "\r", " ").Replace(s)
}

func cefValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// extensions lists the common key/value pairs for CEF and LEEF, in a stable
// order, with CEF key names (LEEF maps a few).
func (e *Event) extensions() [][2]string {
	var kv [][2]string
	add := func(k, v string) {
		if v != "" {
			kv = append(kv, [2]string{k, v})
		}
	}
	add("rt", strconv.FormatInt(e.Time.UnixMilli(), 10))
	add("externalId", e.ID)
	add("dvchost", e.Host)
	add("deviceExternalId", e.ComputerID)
	add("cat", string(e.Kind))
	add("act", e.Action)
	add("msg", e.Message)
	if e.Src != nil {
		add("src", e.Src.IP)
		if e.Src.Port > 0 {
			add("spt", strconv.Itoa(e.Src.Port))
		}
	}
	if e.Dst != nil {
		add("dst", e.Dst.IP)
		if e.Dst.Port > 0 {
			add("dpt", strconv.Itoa(e.Dst.Port))
		}
	}
	add("proto", e.Protocol)
	if e.File != nil {
		add("filePath", e.File.Path)
		add("fileHash", e.File.Hashes["sha256"])
	}
	if e.Process != nil {
		add("sproc", e.Process.Exe)
		if e.Process.PID > 0 {
			add("spid", strconv.Itoa(e.Process.PID))
		}
	}
	if e.User != nil {
		add("duser", e.User.Name)
	}
	if e.HTTP != nil {
		add("request", e.HTTP.URL)
		add("requestMethod", e.HTTP.Method)
	}
	if e.Rule != nil {
		add("cs1Label", "ruleAuthor")
		add("cs1", e.Rule.Author)
	}
	return kv
}

// CEF formats the event in ArcSight Common Event Format.
func (e *Event) CEF(version string) string {
	var b strings.Builder
	sig, name := string(e.Kind), e.Message
	if e.Rule != nil {
		sig = e.Rule.ID
		if e.Rule.Name != "" {
			name = e.Rule.Name
		}
	}
	fmt.Fprintf(&b, "CEF:0|mamori|mamori|%s|%s|%s|%d|", cefHeader(version), cefHeader(sig), cefHeader(name), cefSeverity(e.Severity))
	for i, kv := range e.extensions() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(cefValue(kv[1]))
	}
	return b.String()
}

var leefKeys = map[string]string{"rt": "devTime", "src": "src", "dst": "dst", "spt": "srcPort", "dpt": "dstPort", "duser": "usrName", "cat": "cat", "msg": "msg"}

// LEEF formats the event in IBM QRadar's LEEF 2.0, tab-delimited, with the
// delimiter named in the sixth header field ("x09") so parsers need not guess.
func (e *Event) LEEF(version string) string {
	var b strings.Builder
	id := string(e.Kind)
	if e.Rule != nil {
		id = e.Rule.ID
	}
	fmt.Fprintf(&b, "LEEF:2.0|mamori|mamori|%s|%s|x09|", cefHeader(version), cefHeader(id))
	fmt.Fprintf(&b, "sev=%d", cefSeverity(e.Severity))
	for _, kv := range e.extensions() {
		k := kv[0]
		if m, ok := leefKeys[k]; ok {
			k = m
		}
		v := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(kv[1])
		b.WriteString("\t" + k + "=" + v)
	}
	return b.String()
}
