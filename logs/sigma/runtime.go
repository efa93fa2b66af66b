package sigma

import (
	"strings"
	"time"

	"github.com/mamori-sec/mamori/logs/decode"
)

// Alert is one rule firing.
type Alert struct {
	Rule *Rule
	Time time.Time
	// Record is a copy of the (last) triggering record.
	Record *decode.Record
	// Evidence holds the triggering lines, at most Runtime.MaxEvidence.
	Evidence []string
	// Count is the number of events behind a correlation alert.
	Count int
	// Group holds the correlation's group-by values.
	Group map[string]string
}

// Runtime matches records against a Set and keeps the correlation state.
// It is not safe for concurrent use.
type Runtime struct {
	set *Set
	// MaxEvidence bounds the lines attached to an alert (default 20) and
	// MaxLine each line's length (default 2048).
	MaxEvidence int
	MaxLine     int
	// Now gives the time for records that carry none (default time.Now).
	Now func() time.Time

	tables    []map[string]*group
	newest    time.Time
	fed       int
	lastSweep int
	held      int
	matched   []*Rule
}

// NewRuntime returns a Runtime over a finished Set.
func NewRuntime(s *Set) *Runtime {
	rt := &Runtime{set: s, MaxEvidence: 20, MaxLine: 2048, Now: time.Now}
	for range s.sigs {
		rt.tables = append(rt.tables, map[string]*group{})
	}
	return rt
}

// Groups returns how many correlation groups are held, for metrics.
func (rt *Runtime) Groups() int {
	n := 0
	for _, m := range rt.tables {
		n += len(m)
	}
	return n
}

// Process matches one record and calls emit for each alert.
func (rt *Runtime) Process(rec *decode.Record, emit func(Alert)) {
	ix := rt.set.index
	if ix == nil {
		return
	}
	rt.matched = rt.matched[:0]
	ix.candidates(rec, func(r *Rule) {
		if r.cond.eval(rec) {
			rt.matched = append(rt.matched, r)
		}
	})
	if len(rt.matched) == 0 {
		return
	}
	t := rec.Time
	if t.IsZero() {
		t = rt.Now()
	}
	if t.After(rt.newest) {
		rt.newest = t
	}
	for _, r := range rt.matched {
		if r.Generate {
			emit(Alert{Rule: r, Time: t, Record: rec.Clone(), Evidence: []string{rt.clip(rec.Raw)}, Count: 1})
		}
		for _, c := range ix.usedBy[r] {
			rt.feed(c, r, rec, t, emit)
		}
	}
}

func (rt *Runtime) clip(s string) string {
	if len(s) > rt.MaxLine {
		return s[:rt.MaxLine] + "…"
	}
	return s
}

// group is the state of one group-by value for every correlation sharing
// the group-by list.
type group struct {
	b    []bucket
	last time.Time
}

// bucket is one correlation group's window.
type bucket struct {
	// times (unix nanoseconds) and ev start in the inline arrays: most
	// groups see one or two events, and this saves two allocations each.
	times    []int64
	tinl     [2]int64
	einl     [2]string
	vals     []string
	count    map[string]int // distinct values, once the window is large
	distinct int
	last     time.Time
	ev       []string
	seq      []time.Time
}

// distinctSmall is the window size up to which value_count counts distinct
// values by scanning instead of keeping a map (most groups see one or two
// events, and a map per group is the largest cost).
const distinctSmall = 32

func (b *bucket) addValue(v string) {
	if b.count != nil {
		if b.count[v] == 0 {
			v = strings.Clone(v)
			b.distinct++
		}
		b.count[v]++
		b.vals = append(b.vals, v)
		return
	}
	seen := false
	for _, x := range b.vals {
		if x == v {
			seen, v = true, x
			break
		}
	}
	if !seen {
		v = strings.Clone(v)
		b.distinct++
	}
	b.vals = append(b.vals, v)
	if len(b.vals) > distinctSmall {
		b.count = make(map[string]int, len(b.vals))
		for _, x := range b.vals {
			b.count[x]++
		}
	}
}

// dropValues forgets the first n values.
func (b *bucket) dropValues(n int) {
	for i := 0; i < n; i++ {
		v := b.vals[i]
		if b.count != nil {
			if b.count[v]--; b.count[v] == 0 {
				delete(b.count, v)
				b.distinct--
			}
			continue
		}
		still := false
		for _, x := range b.vals[i+1:] {
			if x == v {
				still = true
				break
			}
		}
		if !still {
			b.distinct--
		}
	}
	b.vals = append(b.vals[:0], b.vals[n:]...)
}

func (b *bucket) addEvidence(line string, max int) {
	if b.ev == nil {
		b.ev = b.einl[:0]
	}
	if len(b.ev) >= max {
		copy(b.ev, b.ev[1:])
		b.ev = b.ev[:max-1]
	}
	// Clone: the line may be a slice of a large read block (Engine.Analyze)
	// that evidence must not keep alive.
	b.ev = append(b.ev, strings.Clone(line))
}

func (rt *Runtime) feed(cr *Rule, base *Rule, rec *decode.Record, t time.Time, emit func(Alert)) {
	c := cr.Correlation
	var key string
	if len(c.groupBy) == 1 {
		// The common case needs no key building (and no allocation).
		v, ok := c.groupBy[0].get(rec)
		if !ok {
			return
		}
		key = v
	} else {
		var kb strings.Builder
		for i, g := range c.groupBy {
			v, ok := g.get(rec)
			if !ok {
				// An event without the group-by field cannot be attributed.
				return
			}
			if i > 0 {
				kb.WriteByte(0)
			}
			kb.WriteString(v)
		}
		key = kb.String()
	}
	table := rt.tables[c.sig]
	g := table[key]
	if g == nil {
		g = &group{b: make([]bucket, rt.set.sigs[c.sig].slots)}
		// Clone: the key must not pin the whole line in memory.
		table[strings.Clone(key)] = g
	}
	b := &g.b[c.slot]
	// Out-of-order lines are counted at the group's latest time, so a late
	// line can neither reopen an old window nor be lost.
	if t.Before(b.last) {
		t = b.last
	}
	b.last = t
	if t.After(g.last) {
		g.last = t
	}
	b.addEvidence(rt.clip(rec.Raw), rt.MaxEvidence)
	fired, count := false, 0
	switch c.Type {
	case "event_count", "value_count":
		if b.times == nil {
			b.times = b.tinl[:0]
		}
		tn := t.UnixNano()
		b.times = append(b.times, tn)
		if c.Type == "value_count" {
			v, ok := c.field.get(rec)
			if !ok {
				b.times = b.times[:len(b.times)-1]
				return
			}
			b.addValue(v)
		}
		drop := 0
		for drop < len(b.times) && tn-b.times[drop] >= int64(c.Timespan) {
			drop++
		}
		if drop > 0 {
			b.times = append(b.times[:0], b.times[drop:]...)
			if c.Type == "value_count" {
				b.dropValues(drop)
			}
		}
		count = len(b.times)
		if c.Type == "value_count" {
			count = b.distinct
		}
		fired = count > c.Threshold || c.Op == "gte" && count == c.Threshold
	case "temporal", "temporal_ordered":
		if b.seq == nil {
			b.seq = make([]time.Time, len(c.rules))
		}
		for i, r := range c.rules {
			if r != base {
				continue
			}
			if c.Type == "temporal_ordered" && i > 0 && (b.seq[i-1].IsZero() || t.Sub(b.seq[0]) >= c.Timespan) {
				continue
			}
			if c.Type == "temporal_ordered" && i == 0 {
				for j := range b.seq {
					b.seq[j] = time.Time{}
				}
			}
			b.seq[i] = t
		}
		fired = true
		for _, s := range b.seq {
			if s.IsZero() || t.Sub(s) >= c.Timespan {
				fired = false
			}
		}
		count = len(b.ev)
	}
	if fired {
		a := Alert{Rule: cr, Time: t, Record: rec.Clone(), Evidence: append([]string(nil), b.ev...), Count: count,
			Group: map[string]string{}}
		for i, g := range c.GroupBy {
			v, _ := c.groupBy[i].get(rec)
			a.Group[g] = v
		}
		// Start over, as fail2ban does after a ban: one alert per burst.
		g.b[c.slot] = bucket{}
		if cr.Generate {
			emit(a)
		}
		for _, next := range rt.set.index.usedBy[cr] {
			rt.feed(next, cr, rec, t, emit)
		}
	}
	rt.fed++
	if rt.fed-rt.lastSweep > 65536 && rt.fed-rt.lastSweep > 2*rt.held {
		rt.sweep()
		rt.lastSweep = rt.fed
	}
}

// sweep forgets groups whose windows have all passed, so memory follows
// the number of active sources, not of all sources ever seen.
func (rt *Runtime) sweep() {
	rt.held = 0
	for i, table := range rt.tables {
		span := rt.set.sigs[i].maxSpan
		for k, g := range table {
			if rt.newest.Sub(g.last) >= span {
				delete(table, k)
			}
		}
		rt.held += len(table)
	}
}
