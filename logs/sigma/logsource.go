package sigma

import (
	"fmt"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/logs/decode"
)

// authServices are the programs whose lines land in /var/log/auth.log, which
// is what Sigma's "service: auth" means.
var authServices = []string{"sshd", "sudo", "su", "login", "useradd", "usermod", "userdel", "groupadd", "groupmod",
	"groupdel", "passwd", "chpasswd", "chage", "gpasswd", "systemd-logind", "cron", "polkitd", "pkexec"}

// serviceAliases maps Sigma service names to the program names we record.
var serviceAliases = map[string][]string{
	"clamav": {"clamd", "freshclam", "clamav"},
	"auth":   authServices,
}

// logsourceActive reports whether a mamori source produces the logsource:
// Linux syslog-style services and auditd, web server access logs, Apache
// and nginx error logs. Process creation, file and network events, cloud
// and Windows logs have no source here (yet).
func logsourceActive(ls Logsource) bool {
	switch ls.Product {
	case "", "linux", "apache", "nginx", "unix":
	default:
		return false
	}
	switch ls.Category {
	case "", "webserver":
	default:
		return false
	}
	return true
}

// index finds the rules whose logsource fits a record without testing
// every rule.
type index struct {
	byService  map[string][]*Rule
	byCategory map[string][]*Rule
	byProduct  map[string][]*Rule
	syslog     []*Rule
	generic    []*Rule
	// consumers of each base rule's matches.
	usedBy map[*Rule][]*Rule
}

func (ix *index) add(r *Rule) {
	ls := r.Logsource
	switch {
	case ls.Service == "syslog":
		ix.syslog = append(ix.syslog, r)
	case ls.Service != "":
		names := serviceAliases[ls.Service]
		if names == nil {
			names = []string{ls.Service}
		}
		for _, n := range names {
			ix.byService[n] = append(ix.byService[n], r)
		}
	case ls.Category != "":
		ix.byCategory[ls.Category] = append(ix.byCategory[ls.Category], r)
	case ls.Product != "":
		ix.byProduct[ls.Product] = append(ix.byProduct[ls.Product], r)
	default:
		ix.generic = append(ix.generic, r)
	}
}

func productFits(r *Rule, rec *decode.Record) bool {
	p := r.Logsource.Product
	if p == "" || p == rec.Product {
		return true
	}
	if (p == "apache" || p == "nginx") && rec.Category == "webserver" {
		return true
	}
	return p == "unix" && rec.Product == "linux"
}

// candidates calls f for every rule whose logsource fits rec.
func (ix *index) candidates(rec *decode.Record, f func(*Rule)) {
	if rec.Service != "" {
		for _, r := range ix.byService[rec.Service] {
			if productFits(r, rec) {
				f(r)
			}
		}
	}
	if rec.Product == "linux" && rec.Format != "auditd" {
		for _, r := range ix.syslog {
			f(r)
		}
	}
	if rec.Category != "" {
		for _, r := range ix.byCategory[rec.Category] {
			if productFits(r, rec) {
				f(r)
			}
		}
	}
	if rec.Product != "" {
		for _, r := range ix.byProduct[rec.Product] {
			f(r)
		}
	}
	if rec.Category == "webserver" {
		for _, r := range ix.byProduct["apache"] {
			f(r)
		}
		for _, r := range ix.byProduct["nginx"] {
			f(r)
		}
	}
	for _, r := range ix.generic {
		f(r)
	}
}

// Finish resolves correlation references and builds the index. Call it
// after the last Add; a correlation whose rules are missing is dropped
// with a LoadError.
func (s *Set) Finish() error {
	s.byRef = map[string]*Rule{}
	for _, r := range s.Rules {
		if r.ID != "" {
			s.byRef[r.ID] = r
		}
		if r.Name != "" {
			s.byRef[r.Name] = r
		}
	}
	ix := &index{byService: map[string][]*Rule{}, byCategory: map[string][]*Rule{}, byProduct: map[string][]*Rule{}, usedBy: map[*Rule][]*Rule{}}
	var kept []*Rule
	for _, r := range s.Rules {
		if c := r.Correlation; c != nil {
			c.rules = c.rules[:0]
			var missing string
			for _, ref := range c.RuleRefs {
				b, ok := s.byRef[ref]
				if !ok {
					missing = ref
					break
				}
				c.rules = append(c.rules, b)
			}
			if missing != "" {
				le := &LoadError{File: r.Source, Line: r.Line, RuleID: r.ID, Title: r.Title, Reason: fmt.Sprintf("correlation references unknown rule %q", missing)}
				s.Errors = append(s.Errors, le)
				if s.Strict {
					return le
				}
				continue
			}
		}
		kept = append(kept, r)
	}
	s.Rules = kept
	for _, r := range s.Rules {
		c := r.Correlation
		if c == nil {
			if r.Active() {
				ix.add(r)
			}
			continue
		}
		for _, b := range c.rules {
			ix.usedBy[b] = append(ix.usedBy[b], r)
			if !c.Generate && !b.explicitGenerate {
				b.Generate = false
			}
		}
	}
	// Assign state tables: one per distinct group-by list.
	s.sigs = s.sigs[:0]
	sigIdx := map[string]int{}
	for _, r := range s.Rules {
		c := r.Correlation
		if c == nil {
			continue
		}
		k := strings.Join(c.GroupBy, "\x00")
		i, ok := sigIdx[k]
		if !ok {
			i = len(s.sigs)
			sigIdx[k] = i
			s.sigs = append(s.sigs, sigInfo{})
		}
		c.sig, c.slot = i, s.sigs[i].slots
		s.sigs[i].slots++
		if c.Timespan > s.sigs[i].maxSpan {
			s.sigs[i].maxSpan = c.Timespan
		}
	}
	s.index = ix
	return nil
}

// sigInfo describes one correlation state table.
type sigInfo struct {
	slots   int
	maxSpan time.Duration
}

// Lookup returns a rule by ID or name.
func (s *Set) Lookup(ref string) *Rule { return s.byRef[ref] }

// Stats counts loaded, active (some source feeds them) and failed rules.
func (s *Set) Stats() (loaded, active, failed int) {
	for _, r := range s.Rules {
		loaded++
		if r.Active() {
			active++
		}
	}
	return loaded, active, len(s.Errors)
}
