// Package logs is mamori's log-inspection engine: it reads log sources
// (files with tail -F semantics, journald, stdin, gzip'd rotations),
// decodes lines into Sigma/ECS fields (logs/decode), matches Sigma rules
// and correlation rules (logs/sigma) and emits alerts as event.Events,
// optionally asking a response.Blocker to block the source.
package logs

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/logs/decode"
	"github.com/mamori-sec/mamori/logs/sigma"
	"github.com/mamori-sec/mamori/response"
)

// Config configures an Engine.
type Config struct {
	Rules *sigma.Set
	// Location of timestamps without a zone; nil = time.Local for live
	// use, set it to UTC for reproducible analysis.
	Location *time.Location
	// Ref is the year-inference reference for RFC 3164 timestamps (zero:
	// now). Analysis of an old file sets it to the file's mtime.
	Ref      time.Time
	Decoders []*decode.Custom
	// Live clamps timestamps more than FutureSlack in the future to now,
	// so a wrong clock in one line cannot hold a correlation window open.
	Live        bool
	FutureSlack time.Duration
	// Blocker, when set, carries out the responses rules ask for.
	Blocker response.Blocker
	Module  string
	Host    string
	Logger  *slog.Logger
	// MaxEvidence bounds the lines attached to one alert (default 20).
	MaxEvidence int
	// DisabledRules lists rule IDs or names that must not alert.
	DisabledRules map[string]bool
}

// Stats counts what the engine saw.
type Stats struct {
	Lines       int64 `json:"lines"`
	Decoded     int64 `json:"decoded"`
	Undecoded   int64 `json:"undecoded"`
	Alerts      int64 `json:"alerts"`
	Blocks      int64 `json:"blocks"`
	BlockErrors int64 `json:"block_errors"`
	InvalidUTF8 int64 `json:"invalid_utf8"`
	FutureTime  int64 `json:"future_timestamps"`
}

// Engine processes lines one at a time. It is not safe for concurrent use;
// run one per goroutine, or serialise lines into it.
type Engine struct {
	cfg  Config
	dec  decode.Decoder
	rt   *sigma.Runtime
	rec  decode.Record
	aud  decode.Grouper
	emit func(event.Event)
	ctx  context.Context

	lines, decoded, undecoded, alerts, blocks, blockErrs, badUTF8, future atomic.Int64
}

// New returns an engine that calls emit for each alert.
func New(ctx context.Context, cfg Config, emit func(event.Event)) *Engine {
	if cfg.Module == "" {
		cfg.Module = "loginspect"
	}
	if cfg.FutureSlack == 0 {
		cfg.FutureSlack = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Engine{cfg: cfg, emit: emit, ctx: ctx}
	e.dec = decode.Decoder{Loc: cfg.Location, Ref: cfg.Ref, Custom: cfg.Decoders}
	e.rt = sigma.NewRuntime(cfg.Rules)
	if cfg.MaxEvidence > 0 {
		e.rt.MaxEvidence = cfg.MaxEvidence
	}
	return e
}

// SetRef changes the year-inference reference (per analysed file).
func (e *Engine) SetRef(t time.Time) { e.dec.Ref = t }

// Line processes one line (without its newline). source names the file or
// stream, for the alert.
func (e *Engine) Line(line string, source string) {
	r := &e.rec
	e.decodeLine(line, r)
	e.process(r, source)
}

// maxRepeat bounds how many events one "message repeated N times" line
// stands for.
const maxRepeat = 1000

func (e *Engine) process(r *decode.Record, source string) {
	emit := func(a sigma.Alert) { e.alert(a, source) }
	n := min(max(r.Repeat, 1), maxRepeat)
	for i := 0; i < n; i++ {
		e.rt.Process(r, emit)
	}
}

// decodeLine is the first half of Line: everything up to rule matching.
func (e *Engine) decodeLine(line string, r *decode.Record) {
	e.lines.Add(1)
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if !utf8.ValidString(line) {
		// Matched as bytes all the same; the JSON encoder replaces the bad
		// bytes in the output.
		e.badUTF8.Add(1)
	}
	e.dec.Decode(line, r)
	if r.Format == "auditd" {
		e.aud.Apply(r)
	}
	if r.Decoded {
		e.decoded.Add(1)
	} else {
		e.undecoded.Add(1)
	}
	if e.cfg.Live && !r.Time.IsZero() {
		if now := time.Now(); r.Time.Sub(now) > e.cfg.FutureSlack {
			e.future.Add(1)
			r.Time = now
		}
	}
}

// Stats returns the counters so far.
func (e *Engine) Stats() Stats {
	return Stats{Lines: e.lines.Load(), Decoded: e.decoded.Load(), Undecoded: e.undecoded.Load(), Alerts: e.alerts.Load(),
		Blocks: e.blocks.Load(), BlockErrors: e.blockErrs.Load(), InvalidUTF8: e.badUTF8.Load(), FutureTime: e.future.Load()}
}

func (e *Engine) alert(a sigma.Alert, source string) {
	r := a.Rule
	if e.cfg.DisabledRules[r.ID] || e.cfg.DisabledRules[r.Name] {
		return
	}
	e.alerts.Add(1)
	ev := event.Event{
		Time:     a.Time.UTC(),
		Kind:     event.KindLogAlert,
		Severity: r.Level,
		Module:   e.cfg.Module,
		Host:     e.cfg.Host,
		Action:   "alerted",
		Rule: &event.Rule{ID: r.Ref(), Name: r.Title, Source: r.Source, Author: r.Author, Tags: r.Tags,
			Refs: r.References},
		Evidence: a.Evidence,
		Count:    a.Count,
		Fields:   map[string]string{},
	}
	rec := a.Record
	if ip, ok := rec.Get(decode.SourceIP); ok {
		ev.Src = &event.Endpoint{IP: ip}
		if p, ok := rec.Get(decode.SourcePort); ok && a.Rule.Correlation == nil {
			ev.Src.Port, _ = strconv.Atoi(p)
		}
	} else if d, ok := rec.Get(decode.SourceDomain); ok {
		ev.Src = &event.Endpoint{Hostname: d}
	}
	if u, ok := rec.Get(decode.UserName); ok && u != "" {
		ev.User = &event.User{Name: u}
	}
	if h, ok := rec.Get(decode.HostName); ok && ev.Host == "" {
		ev.Host = h
	}
	if m, ok := rec.Get(decode.HTTPMethod); ok {
		ev.HTTP = &event.HTTP{Method: m}
		ev.HTTP.URL, _ = rec.Get(decode.URLOriginal)
		ev.HTTP.UserAgent, _ = rec.Get(decode.UserAgent)
		if s, ok := rec.Get(decode.HTTPStatus); ok {
			ev.HTTP.Status, _ = strconv.Atoi(s)
		}
	}
	// The triggering record's decoded fields, for whoever reads the alert.
	for k, v := range rec.Fields() {
		if len(v) <= 512 {
			ev.Fields[k] = v
		}
	}
	if source != "" {
		ev.Fields["log.file.path"] = source
	}
	for k, v := range a.Group {
		ev.Fields["group."+k] = v
	}
	if act, ok := rec.Get(decode.EventAction); ok {
		ev.Fields["event.action"] = act
	}
	if rec.Service != "" {
		ev.Fields["log.service"] = rec.Service
	}
	ev.Message = r.Title
	if ev.Src != nil {
		who := ev.Src.IP
		if who == "" {
			who = ev.Src.Hostname
		}
		ev.Message += " from " + who
	}
	if a.Count > 1 {
		ev.Message += fmt.Sprintf(" (%d events)", a.Count)
	}
	if r.Author != "" && r.Author != "mamori" {
		// DRL 1.1: show the author wherever the match is shown.
		ev.Message += " [rule by " + r.Author + "]"
	}
	if r.Response != nil && e.cfg.Blocker != nil && ev.Src != nil && ev.Src.IP != "" {
		if addr, err := netip.ParseAddr(ev.Src.IP); err == nil {
			addr = addr.Unmap()
			b := response.Block{Addr: netip.PrefixFrom(addr, addr.BitLen()), TTL: r.Response.Block, Reason: r.Ref(), Module: e.cfg.Module}
			if err := e.cfg.Blocker.Block(e.ctx, b); err != nil {
				e.blockErrs.Add(1)
				ev.Fields["response.error"] = err.Error()
			} else {
				e.blocks.Add(1)
				ev.Action = "blocked"
				ev.Fields["response.block_ttl"] = r.Response.Block.String()
			}
		}
	}
	ev.Fill()
	e.emit(ev)
}
