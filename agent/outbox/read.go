package outbox

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Batch is a run of consecutive events read from the cursor.
type Batch struct {
	Events []json.RawMessage
	First  uint64 // sequence number of Events[0]
	Next   uint64 // sequence number after the last event
	end    position
}

// Read returns up to maxEvents events (and about maxBytes of JSON) from the
// acknowledged cursor without moving it: the same events come back until
// Ack. An empty batch means the queue is empty.
func (o *Outbox) Read(maxEvents int, maxBytes int) (Batch, error) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return Batch{}, ErrClosed
	}
	// A new read means the previous batch was not acknowledged.
	o.settleDoubtLocked()
	start, limit, pos := o.st.Acked, o.durable, o.pos
	// In flight from now: a drop while the files are read below must not
	// count records this batch returns.
	o.inflight.first, o.inflight.next, o.inflight.valid = start, limit, true
	segs := make([]segment, 0, len(o.segs))
	for _, s := range o.segs {
		segs = append(segs, *s)
	}
	o.mu.Unlock()

	b := Batch{First: start, Next: start}
	size := 0
	seq := start
	for _, s := range segs {
		if s.end() <= seq || seq >= limit {
			continue
		}
		if seq < s.first {
			// A gap (records lost to corruption or dropped): skip it.
			seq = s.first
			if len(b.Events) == 0 {
				b.First = seq
			}
		}
		var off int64
		if pos.ok && pos.seq == seq && pos.segFirst == s.first {
			off = pos.off
		} else {
			var err error
			off, err = skipRecords(s.path, seq-s.first)
			if errors.Is(err, fs.ErrNotExist) {
				// Dropped by the overflow policy since the snapshot
				// (oldest first): stop here, or move on to the next.
				if len(b.Events) > 0 {
					break
				}
				continue
			}
			if err != nil {
				return Batch{}, err
			}
		}
		n, newOff, full, err := readRecords(s.path, off, min(s.end(), limit)-seq, maxEvents-len(b.Events), maxBytes-size, &b.Events)
		if errors.Is(err, fs.ErrNotExist) && n == 0 {
			if len(b.Events) > 0 {
				break
			}
			continue
		}
		if err != nil {
			return Batch{}, err
		}
		size += int(newOff - off)
		seq += n
		b.end = position{seq: seq, segFirst: s.first, off: newOff, ok: true}
		if full {
			break
		}
	}
	b.Next = seq
	// Narrow the in-flight range to what the batch holds; dropped records
	// outside it were not returned and count as dropped now.
	o.mu.Lock()
	before := o.inDoubt()
	if len(b.Events) == 0 {
		o.inflight.first, o.inflight.next = start, start
	} else {
		o.inflight.first, o.inflight.next = b.First, b.Next
	}
	if d := before - o.inDoubt(); d > 0 {
		o.st.Dropped += int64(d)
		o.dropUnsaved = true
	}
	o.mu.Unlock()
	return b, nil
}

// skipRecords returns the offset of record n of a segment.
func skipRecords(path string, n uint64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("reading outbox segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var off int64
	var h [headerSize]byte
	for i := uint64(0); i < n; i++ {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return 0, fmt.Errorf("reading outbox segment %s: record %d: %w", path, i, err)
		}
		size := int64(binary.LittleEndian.Uint32(h[0:4]))
		if _, err := r.Discard(int(size)); err != nil {
			return 0, fmt.Errorf("reading outbox segment %s: record %d: %w", path, i, err)
		}
		off += headerSize + size
	}
	return off, nil
}

// readRecords appends up to avail records (and at most maxEvents, about
// maxBytes) from off; full reports that a limit stopped it.
func readRecords(path string, off int64, avail uint64, maxEvents, maxBytes int, out *[]json.RawMessage) (n uint64, end int64, full bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, off, false, fmt.Errorf("reading outbox segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, 1<<62), 64<<10)
	end = off
	size := 0
	buf := make([]byte, 0, 4096)
	for n < avail {
		if int(n) >= maxEvents || (size >= maxBytes && n > 0) {
			return n, end, true, nil
		}
		var h [headerSize]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return n, end, false, fmt.Errorf("reading outbox segment %s at %d: %w", path, end, err)
		}
		l := int(binary.LittleEndian.Uint32(h[0:4]))
		if l < minRecordBytes || l > MaxRecordBytes {
			return n, end, false, fmt.Errorf("reading outbox segment %s at %d: %w", path, end, errCorrupt)
		}
		buf = append(buf[:0], h[:]...)
		buf = append(buf, make([]byte, l)...)
		if _, err := io.ReadFull(r, buf[headerSize:]); err != nil {
			return n, end, false, fmt.Errorf("reading outbox segment %s at %d: %w", path, end, err)
		}
		p, _, err := decodeRecord(buf)
		if err != nil {
			return n, end, false, fmt.Errorf("reading outbox segment %s at %d: %w", path, end, err)
		}
		*out = append(*out, json.RawMessage(append([]byte(nil), p...)))
		n++
		size += l
		end += int64(headerSize + l)
	}
	return n, end, int(n) >= maxEvents || size >= maxBytes, nil
}

// Ack moves the cursor past b. Acknowledging an old batch again, or one
// the overflow policy already dropped, is harmless.
func (o *Outbox) Ack(b Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	if o.inflight.valid && o.inflight.first == b.First && o.inflight.next == b.Next {
		// Delivered: whatever drop_oldest removed of it was not lost.
		o.inflight.valid, o.inflight.dropMark = false, 0
	}
	if b.Next <= o.st.Acked {
		return nil
	}
	o.st.Acked = b.Next
	o.pos = b.end
	if err := saveState(o.dir, o.st); err != nil {
		return err
	}
	o.dropUnsaved = false
	o.removeAckedLocked()
	return nil
}
