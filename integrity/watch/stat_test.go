package watch

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStatStart(t *testing.T) {
	for _, tc := range []struct {
		file  string
		start uint64 // 0: any value
		gone  bool
	}{
		{"plain.stat", 0, false},
		{"parens-in-comm.stat", 987654, false},
		{"zombie.stat", 0, true},
		{"truncated.stat", 0, true},
		{"garbage.stat", 0, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "stat", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseStatStart(b)
			if (err != nil) != tc.gone {
				t.Fatalf("err %v, want gone=%v", err, tc.gone)
			}
			if tc.start != 0 && got != tc.start {
				t.Errorf("start %d, want %d", got, tc.start)
			}
		})
	}
}

func FuzzParseStatStart(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "stat", "*.stat"))
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStatStart(b) // must not panic
	})
}

// pidfdRecords returns a pidfd info record (pidfd 7) and a 24-byte
// directory-fid record, as the kernel lays them out after an event.
func pidfdRecords() (rec, fid []byte) {
	rec = make([]byte, 8)
	rec[0] = unix.FAN_EVENT_INFO_TYPE_PIDFD
	binary.NativeEndian.PutUint16(rec[2:], 8)
	binary.NativeEndian.PutUint32(rec[4:], 7)
	fid = make([]byte, 24)
	fid[0] = unix.FAN_EVENT_INFO_TYPE_DFID_NAME
	binary.NativeEndian.PutUint16(fid[2:], 24)
	return rec, fid
}

// FuzzFindPidfd: the info records of an event come from the kernel, but
// a wrong length must never send the scan out of bounds.
func FuzzFindPidfd(f *testing.F) {
	rec, fid := pidfdRecords()
	f.Add(append(fid, rec...))
	f.Add(rec)
	f.Add([]byte{4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		findPidfd(b)
	})
}

func TestFindPidfd(t *testing.T) {
	rec, fid := pidfdRecords()
	if got := findPidfd(append(fid, rec...)); got != 7 {
		t.Errorf("pidfd after a fid record: %d, want 7", got)
	}
	if got := findPidfd(fid); got != unix.FAN_EPIDFD {
		t.Errorf("no pidfd record: %d, want FAN_EPIDFD", got)
	}
	bad := append([]byte{}, rec...)
	binary.NativeEndian.PutUint16(bad[2:], 2)
	if got := findPidfd(bad); got != unix.FAN_EPIDFD {
		t.Errorf("bad record length: %d", got)
	}
}
