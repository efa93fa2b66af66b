package manager

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/mamori-sec/mamori/api"
)

// Event uploads are the manager's largest bodies (MBs, many a second).
// Their buffers are pooled: the rows handed to the store point into them,
// and the handler returns a buffer only after the batch is committed.
var (
	bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	gzipPool sync.Pool // *gzip.Reader
)

// maxPooledBody keeps a rare huge body from pinning its buffer forever.
const maxPooledBody = 4 << 20

func putBody(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		b.Reset()
		bodyPool.Put(b)
	}
}

// readIngestBody reads an upload, gunzipping it when the agent sent
// Content-Encoding: gzip. Both the bytes on the wire and the decompressed
// bytes are bounded by api.MaxBodyBytes, so a small zip bomb gets 413 like
// a large plain body. Other encodings get 415. The caller returns the
// buffer with putBody.
func readIngestBody(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, error) {
	limit := int64(api.MaxBodyBytes)
	var gz bool
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz = true
	default:
		return nil, errf(http.StatusUnsupportedMediaType, "Content-Encoding",
			"Content-Encoding %q not supported: send the body as is or gzip'd", r.Header.Get("Content-Encoding"))
	}
	in := http.MaxBytesReader(w, r.Body, limit)
	buf := bodyPool.Get().(*bytes.Buffer)
	if !gz {
		if n := r.ContentLength; n > 0 && n <= limit {
			buf.Grow(int(n))
		}
		if _, err := buf.ReadFrom(in); err != nil {
			putBody(buf)
			return nil, bodyError(err)
		}
		return buf, nil
	}
	zr, _ := gzipPool.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(in)
	} else {
		err = zr.Reset(in)
	}
	if err != nil {
		putBody(buf)
		return nil, gzipError(err)
	}
	defer gzipPool.Put(zr)
	// Read one byte past the limit to tell "exactly at it" from "over".
	n, err := buf.ReadFrom(io.LimitReader(zr, limit+1))
	switch {
	case err != nil:
		putBody(buf)
		return nil, gzipError(err)
	case n > limit:
		putBody(buf)
		return nil, errf(http.StatusRequestEntityTooLarge, "", "gzip'd body decompresses to more than %d bytes", limit)
	}
	return buf, nil
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errf(http.StatusRequestEntityTooLarge, "", "body larger than %d bytes", mbe.Limit)
	}
	return errf(http.StatusBadRequest, "", "reading body: %v", err)
}

func gzipError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyError(err)
	}
	return errf(http.StatusBadRequest, "Content-Encoding", "malformed gzip body: %v", err)
}
