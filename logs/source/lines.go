// Package source reads log lines for the engine: files with tail -F
// semantics (rotation by rename and by copytruncate, files that appear
// later, globs) with persisted read positions, journald through
// journalctl's JSON export with a persisted cursor, stdin, and gzip'd
// rotated files for one-shot analysis. Lines are bounded in length.
package source

import (
	"bufio"
	"errors"
	"io"
)

// DefaultMaxLine bounds a line; the rest of a longer line is discarded
// (and counted), so a runaway writer cannot exhaust memory.
const DefaultMaxLine = 64 << 10

// LineReader splits a stream into lines. An incomplete last line is kept
// until its newline arrives, so a tailer never emits half a line.
type LineReader struct {
	br      *bufio.Reader
	max     int
	pending []byte
	plen    int64
	// Offset is the stream offset just after the last complete line
	// returned: the position to persist.
	Offset int64
	// Truncated counts lines longer than the limit.
	Truncated int64
}

// NewLineReader reads from r, whose first byte is at offset.
func NewLineReader(r io.Reader, maxLine int, offset int64) *LineReader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &LineReader{br: bufio.NewReaderSize(r, 256<<10), max: maxLine, Offset: offset}
}

// Reset points the reader at a new stream (after reopening a file).
func (l *LineReader) Reset(r io.Reader, offset int64) {
	l.br.Reset(r)
	l.pending = l.pending[:0]
	l.plen = 0
	l.Offset = offset
}

// Next returns the next complete line without its newline. It returns
// io.EOF when no complete line is available yet; the partial data stays
// buffered for the next call.
func (l *LineReader) Next() (string, error) {
	for {
		chunk, err := l.br.ReadSlice('\n')
		if err == nil && len(l.pending) == 0 {
			n := int64(len(chunk))
			l.Offset += n
			line := chunk[:len(chunk)-1]
			if len(line) > l.max {
				l.Truncated++
				line = line[:l.max]
			}
			return string(line), nil
		}
		if len(chunk) > 0 {
			l.plen += int64(len(chunk))
			data := chunk
			if err == nil {
				data = chunk[:len(chunk)-1]
			}
			if room := l.max - len(l.pending); room > 0 {
				if len(data) > room {
					data = data[:room]
				}
				l.pending = append(l.pending, data...)
			}
		}
		if err == nil {
			line := string(l.pending)
			if l.plen-1 > int64(l.max) {
				l.Truncated++
			}
			l.Offset += l.plen
			l.pending, l.plen = l.pending[:0], 0
			return line, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return "", err
	}
}

// Rest returns and clears the incomplete last line, for one-shot reading
// at the end of a file that lacks a final newline.
func (l *LineReader) Rest() (string, bool) {
	if l.plen == 0 {
		return "", false
	}
	s := string(l.pending)
	if l.plen > int64(l.max) {
		l.Truncated++
	}
	l.Offset += l.plen
	l.pending, l.plen = l.pending[:0], 0
	return s, true
}
