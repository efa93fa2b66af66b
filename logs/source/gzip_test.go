package source

import (
	"compress/gzip"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func writeGzip(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(s))
	zw.Close()
	f.Close()
}

// iotestOneByte returns a reader of s that, for odd i, hands out small
// pieces, to exercise block boundaries.
func iotestOneByte(s string, i int) io.Reader {
	if i%2 == 1 {
		return iotest.HalfReader(strings.NewReader(s))
	}
	return strings.NewReader(s)
}
