package source

import (
	"compress/gzip"
	"os"
	"testing"
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
