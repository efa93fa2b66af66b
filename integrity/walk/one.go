package walk

import (
	"context"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/policy"
)

// Covered reports the rule that records the object at logical path p, or
// nil when the policy does not record it (no rule, excluded, too deep, or
// below an excluded or too deep directory).
func Covered(pol *policy.Policy, p string) *policy.Rule {
	r := pol.RuleFor(p)
	if r == nil {
		return nil
	}
	if p == r.Path {
		if rec, _ := r.Match(p, 0, false); rec {
			return r
		}
		return nil
	}
	rel := strings.TrimPrefix(p[len(r.Path):], "/")
	parts := strings.Split(rel, "/")
	cur := strings.TrimSuffix(r.Path, "/")
	if _, desc := r.Match(r.Path, 0, true); !desc {
		return nil
	}
	for i, part := range parts {
		cur += "/" + part
		last := i == len(parts)-1
		rec, desc := r.Match(cur, i+1, !last)
		if last {
			if rec {
				return r
			}
			return nil
		}
		if !desc {
			return nil
		}
	}
	return nil
}

// One records the single object at logical path p the way a walk would.
// It returns nil when the object does not exist (or the policy does not
// record it); the caller tells a removal from the baseline.
func One(ctx context.Context, pol *policy.Policy, opt Options, p string) *Item {
	r := Covered(pol, p)
	if r == nil {
		return nil
	}
	if opt.Retries == 0 {
		opt.Retries = 2
	}
	if opt.Root == "/" {
		opt.Root = ""
	}
	w := &walker{ctx: ctx, pol: pol, opt: opt, stats: &Stats{}}
	var got *Item
	w.emit = func(it *Item) {
		if got == nil || it.Entry.Attrs != 0 {
			c := *it
			got = &c
		}
	}
	full := opt.Root + p
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return nil
		}
		w.fail(task{path: p, rule: r}, err)
		return got
	}
	buf := bufPool.Get().(*[]byte)
	w.record(task{path: p, rule: r, record: true}, full, &st, *buf)
	bufPool.Put(buf)
	return got
}

// bufPool keeps read buffers across single-file verifications (real time
// verifies thousands of files a second).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}
