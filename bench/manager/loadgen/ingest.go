package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

const (
	idMark   = "\x00ID\x00"
	timeMark = "2000-01-01T00:00:00Z"
)

// eventTemplates are a realistic mix of what agents send, marshalled once
// with placeholders, so that building a batch is appending bytes: the load
// generator shares two cores with the manager and must not eat them with
// JSON encoding.
func eventTemplates(host, computerID string) [][2][]byte {
	t0, _ := time.Parse(time.RFC3339, timeMark)
	uid := 1000
	evs := []event.Event{
		{Kind: event.KindLogAlert, Severity: event.SeverityMedium, Module: "loginspect", Message: "sshd: Failed password for invalid user admin from 203.0.113.7 port 52144 ssh2",
			Rule: &event.Rule{ID: "mamori-ssh-bruteforce", Name: "SSH brute force", Source: "mamori-default"}, Src: &event.Endpoint{IP: "203.0.113.7", Port: 52144},
			User: &event.User{Name: "admin"}, Evidence: []string{"Failed password for invalid user admin from 203.0.113.7 port 52144 ssh2"}},
		{Kind: event.KindFirewallDrop, Severity: event.SeverityLow, Module: "firewall", Message: "dropped inbound tcp/23",
			Src: &event.Endpoint{IP: "198.51.100.23", Port: 40112}, Dst: &event.Endpoint{IP: "192.0.2.10", Port: 23}, Protocol: "tcp", Action: "blocked"},
		{Kind: event.KindIntegrityChange, Severity: event.SeverityHigh, Module: "integrity", Message: "/etc/passwd modified",
			File:    &event.File{Path: "/etc/passwd", Size: 1843, Mode: "0644", UID: &uid, Hashes: map[string]string{"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
			Changes: []event.Change{{Attr: "sha256", Old: "e3b0c442", New: "9f86d081"}}},
		{Kind: event.KindMalwareDetection, Severity: event.SeverityCritical, Module: "antimalware", Message: "Eicar-Test-Signature", Action: "quarantined",
			Rule: &event.Rule{ID: "clamav:Eicar-Test-Signature", Name: "Eicar-Test-Signature"}, File: &event.File{Path: "/tmp/eicar.com", Size: 68}},
		{Kind: event.KindDNSBlock, Severity: event.SeverityInfo, Module: "dnsfilter", Message: "blocked query", DNS: &event.DNS{Query: "malware.example.test", Type: "A", RCode: "NXDOMAIN"}},
	}
	out := make([][2][]byte, len(evs))
	for i := range evs {
		evs[i].ID, evs[i].Time, evs[i].Host, evs[i].ComputerID = idMark, t0, host, computerID
		b, err := json.Marshal(&evs[i])
		if err != nil {
			panic(err)
		}
		head, tail, ok := bytes.Cut(b, []byte(`"id":"\u0000ID\u0000"`))
		if !ok {
			panic("event template lost its ID placeholder")
		}
		out[i] = [2][]byte{append(head, `"id":"`...), append([]byte(`"`), tail...)}
		if !bytes.Contains(out[i][1], []byte(timeMark)) {
			panic("event template lost its time placeholder")
		}
	}
	return out
}

// batchBuilder writes EventBatch bodies with fresh event IDs.
type batchBuilder struct {
	tmpl [][2][]byte
	buf  bytes.Buffer
	zbuf bytes.Buffer
	zw   *gzip.Writer
}

func (b *batchBuilder) build(n int) []byte {
	b.buf.Reset()
	now := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	b.buf.WriteString(`{"events":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.buf.WriteByte(',')
		}
		t := b.tmpl[i%len(b.tmpl)]
		b.buf.Write(t[0])
		b.buf.WriteString(event.NewID())
		// the time written in place: bytes.Replace allocated a copy of
		// every event, garbage on the two cores the manager runs on
		pre, post, _ := bytes.Cut(t[1], []byte(timeMark))
		b.buf.Write(pre)
		b.buf.Write(now)
		b.buf.Write(post)
	}
	b.buf.WriteString(`]}`)
	return b.buf.Bytes()
}

// gzip compresses a batch the way the agent does (BestSpeed).
func (b *batchBuilder) gzip(body []byte) []byte {
	b.zbuf.Reset()
	if b.zw == nil {
		b.zw, _ = gzip.NewWriterLevel(&b.zbuf, gzip.BestSpeed)
	} else {
		b.zw.Reset(&b.zbuf)
	}
	_, _ = b.zw.Write(body)
	_ = b.zw.Close()
	return b.zbuf.Bytes()
}

// ingestAll has each agent upload batches back to back for dur and
// returns the events the manager accepted and the time it took.
func ingestAll(ctx context.Context, o options, agents []*agent, st *stats, dur time.Duration, ph phase) (int64, time.Duration) {
	var accepted atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	t0 := time.Now()
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bb := &batchBuilder{tmpl: eventTemplates(a.host.Hostname, a.computerID)}
			for ctx.Err() == nil {
				body := bb.build(o.batch)
				var hdr map[string]string
				if o.gzip {
					body, hdr = bb.gzip(body), map[string]string{"Content-Encoding": "gzip"}
				}
				s := time.Now()
				code, b, err := call(ctx, a.client, http.MethodPost, o.url+api.PathAgentEvents, body, hdr)
				if ctx.Err() != nil {
					return // cut off by the window's end: not counted either way
				}
				if err == nil && code/100 != 2 {
					err = httpError(code, b)
				}
				if err != nil {
					st.fail("ingest", err)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				var r api.IngestResult
				if err := json.Unmarshal(b, &r); err != nil {
					st.fail("ingest", fmt.Errorf("decoding ingest result: %w", err))
					continue
				}
				if r.Rejected > 0 {
					st.fail("ingest-rejected", fmt.Errorf("%d events rejected: %v", r.Rejected, r.Errors))
				}
				accepted.Add(int64(r.Accepted))
				st.observe("ingest", ph, time.Since(s))
			}
		}()
	}
	wg.Wait()
	return accepted.Load(), time.Since(t0)
}
