package manager

import (
	"bytes"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

// decodeBatchInto decodes an EventBatch body and returns each event with the
// bytes it came in (raw[i] is events[i]'s JSON object, a slice of body),
// so ingest can store what the agent sent instead of encoding it again.
//
// The fast path splits the canonical {"events":[{…},…]} shape and decodes
// each object strictly. Anything else — another shape, a bad event — is
// decoded again as a whole, the way every other body is, so the answer
// (status, field, message) does not depend on which path ran; raw is then
// nil.
//
// The events are decoded into dst's storage when it is large enough (the
// ingest handler pools it: a 2000-event batch is about a megabyte of Event
// structs); a nil dst allocates.
func decodeBatchInto(body []byte, dst []event.Event) (evs []event.Event, raw [][]byte, err error) {
	if elems, ok := splitBatch(body); ok {
		if len(elems) > 0 && cap(dst) >= len(elems) {
			evs = dst[:len(elems)]
			clear(evs) // fastEvent fills in only the keys it meets
		} else {
			evs = make([]event.Event, len(elems))
		}
		ok = len(elems) <= api.MaxBatchEvents
		for i := 0; ok && i < len(elems); i++ {
			if !fastEvent(elems[i], &evs[i]) {
				evs[i] = event.Event{}
				ok = decodeStrict(elems[i], &evs[i]) == nil
			}
		}
		if ok {
			return evs, elems, nil
		}
	}
	var batch api.EventBatch
	if err := decodeStrict(body, &batch); err != nil {
		return nil, nil, err
	}
	return batch.Events, nil, nil
}

// splitBatch finds the array elements of a body shaped exactly
// {"events":[{…},{…}]} (any JSON whitespace between tokens). Each element
// is an object's bytes, '{' to its matching '}'; strings (with escapes) are
// skipped so braces inside them do not count. It checks only the nesting,
// not the grammar: the strict decode of each element does that. ok is false
// for any other shape.
func splitBatch(b []byte) (elems [][]byte, ok bool) {
	i := skipWS(b, 0)
	for _, tok := range [...]string{"{", `"events"`, ":", "["} {
		if !bytes.HasPrefix(b[i:], []byte(tok)) {
			return nil, false
		}
		i = skipWS(b, i+len(tok))
	}
	elems = make([][]byte, 0, 1024)
	if i < len(b) && b[i] == ']' {
		i = skipWS(b, i+1)
	} else {
		for {
			if i >= len(b) || b[i] != '{' {
				return nil, false
			}
			end := objectEnd(b, i)
			if end < 0 {
				return nil, false
			}
			elems = append(elems, b[i:end])
			i = skipWS(b, end)
			if i >= len(b) {
				return nil, false
			}
			if b[i] == ']' {
				i = skipWS(b, i+1)
				break
			}
			if b[i] != ',' {
				return nil, false
			}
			i = skipWS(b, i+1)
		}
	}
	if i >= len(b) || b[i] != '}' || skipWS(b, i+1) != len(b) {
		return nil, false
	}
	return elems, true
}

// objectEnd returns the index just past the '}' that closes the object or
// array opening at b[i], or -1 when the body ends first.
func objectEnd(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return -1
			}
		}
	}
	return -1
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
