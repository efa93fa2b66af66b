package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
)

// ReadBlocks is ReadAllContext without an allocation per line: it reads
// large blocks, turns the complete lines of each into one string and hands
// out substrings of it. A caller that keeps a line beyond fn must clone it
// (strings.Clone), or it pins the whole block.
func ReadBlocks(ctx context.Context, r io.Reader, maxLine int, fn func(line string)) (truncated int64, err error) {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	buf := make([]byte, max(1<<20, 2*maxLine))
	start, end := 0, 0
	discard := false // dropping the rest of an over-long line
	for {
		if ctx.Err() != nil {
			return truncated, ctx.Err()
		}
		if end == len(buf) {
			copy(buf, buf[start:end])
			end -= start
			start = 0
		}
		n, rerr := r.Read(buf[end:])
		end += n
		if last := bytes.LastIndexByte(buf[start:end], '\n'); last >= 0 {
			s := string(buf[start : start+last+1])
			start += last + 1
			for len(s) > 0 {
				i := strings.IndexByte(s, '\n')
				line := s[:i]
				s = s[i+1:]
				if discard {
					discard = false
					continue
				}
				if len(line) > maxLine {
					truncated++
					line = line[:maxLine]
				}
				fn(line)
			}
		}
		switch {
		case discard:
			start = end
		case end-start > maxLine:
			fn(string(buf[start : start+maxLine]))
			truncated++
			discard = true
			start = end
		}
		if start == end {
			start, end = 0, 0
		}
		if rerr != nil {
			if rerr == io.EOF {
				if end > start && !discard {
					fn(string(buf[start:end]))
				}
				return truncated, nil
			}
			return truncated, fmt.Errorf("reading log: %w", rerr)
		}
	}
}
