package source

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
)

// countingReader counts bytes read, for progress reporting.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// OpenFile opens a file for one-shot reading, transparently gunzipping
// rotated files (detected by magic bytes, not by name). read, when not nil,
// counts the compressed bytes consumed.
func OpenFile(path string, read *int64) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	var r io.Reader = f
	if read != nil {
		r = countingReader{f, read}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("opening gzip log %s: %w", path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{gz, f}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{br, f}, nil
}

// ReadAll feeds every line of r to fn, including a last line without a
// newline. It returns the number of truncated lines.
func ReadAll(r io.Reader, maxLine int, fn func(line string)) (truncated int64, err error) {
	return ReadAllContext(context.Background(), r, maxLine, fn)
}

// ReadAllContext is ReadAll that stops with ctx's error when ctx is done.
func ReadAllContext(ctx context.Context, r io.Reader, maxLine int, fn func(line string)) (truncated int64, err error) {
	lr := NewLineReader(r, maxLine, 0)
	for n := 1; ; n++ {
		if n&0xffff == 0 && ctx.Err() != nil {
			return lr.Truncated, ctx.Err()
		}
		line, err := lr.Next()
		if err != nil {
			if rest, ok := lr.Rest(); ok {
				fn(rest)
			}
			if err == io.EOF {
				return lr.Truncated, nil
			}
			return lr.Truncated, fmt.Errorf("reading log: %w", err)
		}
		fn(line)
	}
}
