package outbox

import (
	"bytes"
	"testing"
)

func TestDecodeSegment(t *testing.T) {
	good := appendRecord(appendRecord(nil, []byte(`{"id":"a"}`)), []byte(`{"id":"b"}`))
	for _, tc := range []struct {
		name      string
		in        []byte
		wantRecs  int
		wantValid int
	}{
		{"empty", nil, 0, 0},
		{"two records", good, 2, len(good)},
		{"torn payload", good[:len(good)-1], 1, len(good) / 2},
		{"torn header", good[:len(good)/2+4], 1, len(good) / 2},
		{"zero tail", append(append([]byte(nil), good...), make([]byte, 16)...), 2, len(good)},
		{"length too large", []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, valid := decodeSegment(tc.in)
			if len(recs) != tc.wantRecs || valid != tc.wantValid {
				t.Fatalf("decodeSegment = %d records, valid %d; want %d, %d", len(recs), valid, tc.wantRecs, tc.wantValid)
			}
		})
	}
}

// FuzzDecodeSegment checks the decoder never panics, never claims more than
// its input, and that what it accepts re-encodes to exactly the same bytes.
func FuzzDecodeSegment(f *testing.F) {
	good := appendRecord(appendRecord(nil, []byte(`{"id":"a"}`)), []byte(`{"id":"b","kind":"x"}`))
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte{})
	f.Add(make([]byte, 32))
	f.Add([]byte{2, 0, 0, 0, 1, 2, 3, 4, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, valid := decodeSegment(b)
		if valid < 0 || valid > len(b) {
			t.Fatalf("valid = %d for %d bytes", valid, len(b))
		}
		var re []byte
		for _, r := range recs {
			re = appendRecord(re, r)
		}
		if !bytes.Equal(re, b[:valid]) {
			t.Fatalf("re-encoding %d records does not give the accepted prefix", len(recs))
		}
	})
}
