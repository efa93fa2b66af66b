// Package outbox is the agent's durable event queue. An event counts as
// emitted once Append returns: it is then in an append-only segment file and
// fsync'd. The uploader reads batches from the acknowledged cursor, sends
// them, and acknowledges; a crash between send and acknowledge resends the
// batch, and the manager drops the duplicates by event ID, so delivery is
// exactly once end to end.
//
// Concurrent appends share one write and one fsync (group commit). Disk use
// is bounded: when the queue is full the overflow policy drops the oldest
// segment or the newest events, and every dropped event is counted in a
// persisted counter that the agent reports — never silently.
package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/agent/internal/atomicfile"
	"github.com/mamori-sec/mamori/event"
)

// Overflow policies.
const (
	DropOldest = "drop_oldest"
	DropNewest = "drop_newest"
)

// DefaultMaxBytes is the disk budget when the policy sets none.
const DefaultMaxBytes = 256 << 20

// ErrClosed is returned by calls on a closed outbox.
var ErrClosed = errors.New("outbox closed")

// Options bound the queue.
type Options struct {
	MaxBytes int64  // total size of segment files; 0 = DefaultMaxBytes
	Overflow string // DropOldest (default) or DropNewest
	// SegmentBytes is the size at which a segment is closed and a new one
	// started; 0 = MaxBytes/8 capped at 16 MiB. Dropping the oldest frees a
	// whole segment, so segments are a fraction of the budget.
	SegmentBytes int64
	Logger       *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	switch o.Overflow {
	case "":
		o.Overflow = DropOldest
	case DropOldest, DropNewest:
	default:
		return o, fmt.Errorf("outbox: field overflow: %q is not drop_oldest or drop_newest", o.Overflow)
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(o.MaxBytes/8, 16<<20)
	}
	o.SegmentBytes = max(o.SegmentBytes, 4096)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// segment is one file, named by the sequence number of its first record.
type segment struct {
	first uint64
	count uint64
	size  int64
	path  string
}

func (s *segment) end() uint64 { return s.first + s.count }

// position caches where the record with sequence seq starts, so reads from
// the cursor do not rescan the segment.
type position struct {
	seq      uint64
	segFirst uint64
	off      int64
	ok       bool
}

// Outbox is safe for concurrent use.
type Outbox struct {
	dir  string
	opts Options

	mu       sync.Mutex
	segs     []*segment // sorted; the last is the active one
	active   *os.File
	next     uint64 // sequence number of the next record appended
	durable  uint64 // records below this are fsync'd and may be read
	st       state
	pos      position
	bytes    int64
	closed   bool
	recovery Recovery
	commits  int64 // fsyncs of appended data, for the group-commit test

	fixedSegments bool // SegmentBytes was set by the caller, not derived

	// inflight is the batch being read or uploaded; drop_oldest records
	// removed from it, [first, dropMark), are in doubt until Ack.
	inflight struct {
		first, next, dropMark uint64
		valid                 bool
	}

	lastDropSave time.Time
	dropUnsaved  bool

	reqs chan *appendReq
	done chan struct{}
}

// Recovery says what Open found.
type Recovery struct {
	Segments       int
	Records        uint64 // records found on disk, acknowledged or not
	TruncatedBytes int64  // torn or corrupt tail bytes cut off
	CursorReset    bool   // the cursor file was unreadable; everything is resent
}

type appendReq struct {
	payloads [][]byte
	err      chan error
}

// Open opens or creates the outbox in dir, recovering from a crash: each
// segment is read, a torn or corrupt tail is cut off (the records before it
// are kept) and the cursor is clamped to what exists.
func Open(dir string, opts Options) (*Outbox, error) {
	fixed := opts.SegmentBytes > 0
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening outbox: %w", err)
	}
	o := &Outbox{dir: dir, opts: opts, fixedSegments: fixed, reqs: make(chan *appendReq, 256), done: make(chan struct{})}
	o.st, err = loadState(dir)
	if err != nil {
		opts.Logger.Warn("outbox cursor unreadable; resending everything on disk", "err", err)
		o.recovery.CursorReset = true
	}
	if err := o.recover(); err != nil {
		return nil, err
	}
	go o.commitLoop()
	return o, nil
}

func segName(first uint64) string { return fmt.Sprintf("%016x.seg", first) }

func (o *Outbox) recover() error {
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return fmt.Errorf("opening outbox: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") || e.IsDir() {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 16, 64)
		if err != nil {
			continue
		}
		p := filepath.Join(o.dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("opening outbox: reading %s: %w", p, err)
		}
		recs, valid := decodeSegment(b)
		if valid < len(b) {
			o.opts.Logger.Warn("outbox segment has a torn or corrupt tail; truncating", "file", p, "kept_records", len(recs), "cut_bytes", len(b)-valid)
			if err := os.Truncate(p, int64(valid)); err != nil {
				return fmt.Errorf("opening outbox: truncating %s: %w", p, err)
			}
			o.recovery.TruncatedBytes += int64(len(b) - valid)
		}
		o.segs = append(o.segs, &segment{first: first, count: uint64(len(recs)), size: int64(valid), path: p})
		o.recovery.Records += uint64(len(recs))
	}
	sort.Slice(o.segs, func(i, j int) bool { return o.segs[i].first < o.segs[j].first })
	// A segment that overlaps the next one can only come from tampering or
	// a bug; trust the later file's name and cut the earlier one's count.
	for i := 0; i+1 < len(o.segs); i++ {
		if o.segs[i].end() > o.segs[i+1].first {
			o.segs[i].count = o.segs[i+1].first - o.segs[i].first
		}
	}
	o.recovery.Segments = len(o.segs)
	o.next = o.st.Acked
	if n := len(o.segs); n > 0 {
		o.next = max(o.next, o.segs[n-1].end())
	}
	if o.st.Acked > o.next {
		o.st.Acked = o.next
	}
	o.durable = o.next
	if err := o.openActive(); err != nil {
		return err
	}
	for _, s := range o.segs {
		o.bytes += s.size
	}
	o.removeAckedLocked()
	return nil
}

// openActive opens the last segment for appending, or starts one.
func (o *Outbox) openActive() error {
	if n := len(o.segs); n > 0 && o.segs[n-1].size < o.opts.SegmentBytes {
		f, err := os.OpenFile(o.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening outbox segment: %w", err)
		}
		o.active = f
		return nil
	}
	return o.startSegment()
}

// startSegment closes the active segment (already synced by the caller)
// and creates the next one.
func (o *Outbox) startSegment() error {
	if o.active != nil {
		if err := o.active.Close(); err != nil {
			return fmt.Errorf("closing outbox segment: %w", err)
		}
		o.active = nil
	}
	p := filepath.Join(o.dir, segName(o.next))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating outbox segment: %w", err)
	}
	if err := atomicfile.SyncDir(o.dir); err != nil {
		f.Close()
		return err
	}
	o.active = f
	o.segs = append(o.segs, &segment{first: o.next, path: p})
	return nil
}

// Append stores events durably; when it returns nil each event is on disk,
// or was dropped by the overflow policy and counted. Empty IDs and times
// are filled first.
func (o *Outbox) Append(evs ...event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	req := &appendReq{payloads: make([][]byte, 0, len(evs)), err: make(chan error, 1)}
	for i := range evs {
		evs[i].Fill()
		b, err := json.Marshal(&evs[i])
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", evs[i].ID, err)
		}
		if len(b) > MaxRecordBytes {
			return fmt.Errorf("appending event %s: %d bytes encoded, more than %d", evs[i].ID, len(b), MaxRecordBytes)
		}
		req.payloads = append(req.payloads, b)
	}
	select {
	case o.reqs <- req:
	case <-o.done:
		return ErrClosed
	}
	// The request may sit in the channel's buffer when Close stops the
	// committer, so waiting on the answer alone could block forever.
	select {
	case err := <-req.err:
		return err
	case <-o.done:
		select {
		case err := <-req.err:
			return err
		default:
			return ErrClosed
		}
	}
}

// commitLoop is the single writer: it gathers whatever appends are waiting,
// writes them in one go and fsyncs once for all of them.
func (o *Outbox) commitLoop() {
	var batch []*appendReq
	var buf []byte
	for {
		var first *appendReq
		select {
		case first = <-o.reqs:
		case <-o.done:
			o.failPending(ErrClosed)
			return
		}
		batch = append(batch[:0], first)
	gather:
		for len(batch) < 1024 {
			select {
			case r := <-o.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		err := o.commit(batch, buf[:0])
		for _, r := range batch {
			r.err <- err
		}
	}
}

func (o *Outbox) failPending(err error) {
	for {
		select {
		case r := <-o.reqs:
			r.err <- err
		default:
			return
		}
	}
}

func (o *Outbox) commit(batch []*appendReq, buf []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	droppedBefore := o.st.Dropped
	seg := o.segs[len(o.segs)-1]
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := o.active.Write(buf); err != nil {
			return fmt.Errorf("writing outbox segment: %w", err)
		}
		buf = buf[:0]
		return nil
	}
	for _, r := range batch {
		for _, p := range r.payloads {
			size := int64(headerSize + len(p))
			if !o.makeRoomLocked(size) {
				o.st.Dropped++
				continue
			}
			if seg.size+size > o.opts.SegmentBytes && seg.count > 0 {
				if err := flush(); err != nil {
					return err
				}
				if err := o.active.Sync(); err != nil {
					return fmt.Errorf("syncing outbox segment: %w", err)
				}
				o.durable = o.next
				if err := o.startSegment(); err != nil {
					return err
				}
				seg = o.segs[len(o.segs)-1]
			}
			buf = appendRecord(buf, p)
			seg.count++
			seg.size += size
			o.bytes += size
			o.next++
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := o.active.Sync(); err != nil {
		return fmt.Errorf("syncing outbox segment: %w", err)
	}
	o.commits++
	o.durable = o.next
	if o.st.Dropped != droppedBefore {
		// Under drop_newest the counter is persisted at most once a second: a
		// full queue would otherwise pay three fsyncs per dropped event. A
		// crash can lose at most the last second's count; Ack and Close save it.
		// drop_oldest drops a whole segment at a time (rare) and moves the
		// cursor: always saved at once.
		if now := time.Now(); o.opts.Overflow == DropOldest || now.Sub(o.lastDropSave) >= time.Second {
			o.opts.Logger.Warn("outbox full; events dropped", "policy", o.opts.Overflow, "dropped_total", o.st.Dropped)
			o.lastDropSave = now
			if err := saveState(o.dir, o.st); err != nil {
				return err
			}
		} else {
			o.dropUnsaved = true
		}
	}
	return nil
}

// makeRoomLocked applies the overflow policy before a record of size bytes
// is added. It reports whether the record may be written.
func (o *Outbox) makeRoomLocked(size int64) bool {
	if o.bytes+size <= o.opts.MaxBytes {
		return true
	}
	if o.opts.Overflow == DropNewest {
		return false
	}
	// Drop whole segments from the oldest end. The active one cannot go
	// while it holds buffered records; when it is the only one left the
	// record is dropped instead.
	for o.bytes+size > o.opts.MaxBytes && len(o.segs) > 1 {
		s := o.segs[0]
		if s.end() > o.st.Acked {
			lo, hi := max(s.first, o.st.Acked), s.end()
			// Records of the batch being read or uploaded right now may
			// still be delivered: they stay "in doubt" until that batch is
			// acknowledged (delivered, not dropped) or not (dropped).
			var doubt uint64
			if f := &o.inflight; f.valid {
				if a, b := max(lo, f.first), min(hi, f.next); b > a {
					doubt = b - a
					f.dropMark = max(f.dropMark, b)
				}
			}
			o.st.Dropped += int64(hi - lo - doubt)
			o.st.Acked = hi
			o.pos = position{}
		}
		o.removeSegmentLocked(0)
	}
	return o.bytes+size <= o.opts.MaxBytes
}

func (o *Outbox) removeSegmentLocked(i int) {
	s := o.segs[i]
	if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
		o.opts.Logger.Warn("removing outbox segment", "file", s.path, "err", err)
	}
	o.bytes -= s.size
	o.segs = append(o.segs[:i], o.segs[i+1:]...)
}

// removeAckedLocked deletes segments whose records are all acknowledged,
// except the active one.
func (o *Outbox) removeAckedLocked() {
	for len(o.segs) > 1 && o.segs[0].end() <= o.st.Acked {
		o.removeSegmentLocked(0)
	}
}

// Close stops the outbox. Pending appends fail with ErrClosed.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	close(o.done)
	var err error
	o.settleDoubtLocked()
	if o.dropUnsaved {
		err = saveState(o.dir, o.st)
	}
	if o.active != nil {
		if cerr := o.active.Close(); err == nil {
			err = cerr
		}
		o.active = nil
	}
	o.mu.Unlock()
	return err
}

// Stats is a snapshot of the queue.
type Stats struct {
	Depth    int64  `json:"depth"` // events waiting for upload
	Bytes    int64  `json:"bytes"` // disk used by segments
	Dropped  int64  `json:"dropped"`
	Reported int64  `json:"reported"`
	Next     uint64 `json:"next"`  // sequence number of the next event
	Acked    uint64 `json:"acked"` // first unacknowledged sequence number
	MaxBytes int64  `json:"max_bytes"`
}

// Stats returns the current counters.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	var depth int64
	for _, s := range o.segs {
		if s.end() > o.st.Acked {
			depth += int64(s.end() - max(s.first, o.st.Acked))
		}
	}
	return Stats{Depth: depth, Bytes: o.bytes, Dropped: o.st.Dropped, Reported: o.st.Reported, Next: o.next, Acked: o.st.Acked, MaxBytes: o.opts.MaxBytes}
}

// Recovery returns what Open found on disk.
func (o *Outbox) Recovery() Recovery {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.recovery
}

// SetLimits changes the disk budget and overflow policy (a policy change).
func (o *Outbox) SetLimits(maxBytes int64, overflow string) error {
	seg := int64(0)
	if o.fixedSegments {
		seg = o.opts.SegmentBytes
	}
	n, err := Options{MaxBytes: maxBytes, Overflow: overflow, SegmentBytes: seg, Logger: o.opts.Logger}.withDefaults()
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	// New segments take the new size; the active one rolls over when it
	// passes it.
	o.opts.MaxBytes, o.opts.Overflow, o.opts.SegmentBytes = n.MaxBytes, n.Overflow, n.SegmentBytes
	return nil
}

// MarkReported records that drops up to total were reported in an event,
// so a restart does not report them again.
func (o *Outbox) MarkReported(total int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if total <= o.st.Reported {
		return nil
	}
	o.st.Reported = min(total, o.st.Dropped)
	return saveState(o.dir, o.st)
}

// inDoubt counts the in-flight records drop_oldest removed.
func (o *Outbox) inDoubt() uint64 {
	f := o.inflight
	if !f.valid || f.dropMark <= f.first {
		return 0
	}
	return min(f.dropMark, f.next) - f.first
}

// settleDoubtLocked counts in-doubt records as dropped: their batch was
// not acknowledged, so as far as the agent knows they were not delivered.
func (o *Outbox) settleDoubtLocked() {
	if d := o.inDoubt(); d > 0 {
		o.st.Dropped += int64(d)
		o.dropUnsaved = true
	}
	o.inflight.valid, o.inflight.dropMark = false, 0
}
