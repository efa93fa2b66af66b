package integrity

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
)

// What a finding is about.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
	Error   = "error"
)

// Finding is one difference between the baseline and the filesystem, or
// one object that could not be checked.
type Finding struct {
	What    string // Added, Removed, Changed, Error
	Path    string
	Rule    *policy.Rule
	Old     *baseline.Entry // nil when added
	New     *baseline.Entry // nil when removed
	Changes []event.Change  // for Changed: attribute, old → new
	Err     string          // for Error
}

// Diff lists the attributes the rule watches that differ between old and
// new, in canonical attribute order. Only attributes recorded on both sides
// are compared: an unreadable file is an error, not a content change.
func Diff(old, cur *baseline.Entry, rule *policy.Rule) []event.Change {
	want := rule.Attrs | policy.AttrType
	common := old.Attrs & cur.Attrs & want
	var out []event.Change
	common.Each(func(a policy.Attr) {
		if !old.Equal(cur, a) {
			out = append(out, event.Change{Attr: a.String(), Old: old.Value(a), New: cur.Value(a)})
		}
	})
	return out
}

// DisplayPath makes a path printable: names that are not valid UTF-8 get
// their bad bytes escaped as \xNN, so reports and JSON stay lossless.
func DisplayPath(p string) string {
	if utf8.ValidString(p) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, p[i])
		} else {
			b.WriteString(p[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Event turns a finding into mamori's event model.
func (f *Finding) Event(host string) event.Event {
	ev := event.Event{
		Kind:     event.KindIntegrityChange,
		Module:   "integrity",
		Host:     host,
		Action:   "alerted",
		Changes:  f.Changes,
		Severity: event.SeverityMedium,
		Fields:   map[string]string{"change": f.What},
	}
	if f.Rule != nil {
		ev.Severity = f.Rule.Severity
		ev.Rule = &event.Rule{ID: "fim:" + f.Rule.Path, Name: "integrity " + f.Rule.Path, Source: f.Rule.Source}
	}
	p := DisplayPath(f.Path)
	if p != f.Path {
		ev.Fields["path_escaped"] = "true"
	}
	e := f.New
	if e == nil {
		e = f.Old
	}
	ev.File = fileOf(p, e)
	switch f.What {
	case Added:
		ev.Message = "added: " + p
	case Removed:
		ev.Message = "removed: " + p
	case Changed:
		var attrs []string
		for _, c := range f.Changes {
			attrs = append(attrs, c.Attr)
		}
		ev.Message = fmt.Sprintf("changed: %s (%s)", p, strings.Join(attrs, ", "))
	case Error:
		ev.Kind = event.KindIntegrityError
		ev.Severity = event.SeverityLow
		ev.Action = ""
		ev.Message = fmt.Sprintf("not checked: %s: %s", p, f.Err)
	}
	ev.Fill()
	return ev
}

func fileOf(p string, e *baseline.Entry) *event.File {
	f := &event.File{Path: p}
	if e == nil {
		return f
	}
	f.Type = baseline.TypeName(e.Type)
	if e.Attrs.Has(policy.AttrSize) {
		f.Size = e.Size
	}
	if e.Attrs.Has(policy.AttrMode) {
		f.Mode = strconv.FormatUint(uint64(e.Mode), 8)
	}
	if e.Attrs.Has(policy.AttrUID) {
		u := int(e.UID)
		f.UID = &u
	}
	if e.Attrs.Has(policy.AttrGID) {
		g := int(e.GID)
		f.GID = &g
	}
	if e.Attrs.Has(policy.AttrInode) {
		f.Inode = e.Inode
	}
	if e.Attrs.Has(policy.AttrMTime) {
		t := time.Unix(0, e.MTime).UTC()
		f.MTime = &t
	}
	if e.Attrs.Any(policy.AttrHashes) {
		f.Hashes = map[string]string{}
		(e.Attrs & policy.AttrHashes).Each(func(a policy.Attr) { f.Hashes[a.String()] = e.Value(a) })
	}
	return f
}
