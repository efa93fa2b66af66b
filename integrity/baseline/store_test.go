package baseline

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/policy"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func sample(n int) *Baseline {
	b := &Baseline{Header: Header{Created: 1700000000e9, PolicyName: "p", PolicyDigest: "d"}}
	for i := 0; i < n; i++ {
		e := Entry{Path: fmt.Sprintf("/etc/dir%03d/file\xff%05d", i/100, i), Attrs: policy.DefaultAttrs | policy.AttrBLAKE3 | policy.AttrXXH3, Type: TypeFile,
			Mode: 0o644, UID: uint32(i), GID: 7, Size: int64(i * 10), MTime: int64(i) * 1e9, CTime: -5, Inode: uint64(i) << 20, Nlink: 1,
			XXH3: uint64(i) * 77, X: &Extra{Target: "t", Xattrs: "user.a=\"b\"", ACL: "access:user::rw-", SELinux: "system_u:object_r:etc_t:s0"}}
		e.SHA256[0], e.X.BLAKE3[31] = byte(i), byte(i>>3)|1
		if i%10 == 0 {
			e.Flags, e.X.Err = FlagError, "permission denied"
		}
		b.Entries = append(b.Entries, e)
	}
	b.Entries = Sort(b.Entries)
	return b
}

func TestRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.db")
	want := sample(1000)
	if err := Save(p, testKey, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header != want.Header || len(got.Entries) != len(want.Entries) {
		t.Fatalf("Load = %+v with %d entries, want %+v with %d", got.Header, len(got.Entries), want.Header, len(want.Entries))
	}
	for i := range want.Entries {
		if !reflect.DeepEqual(got.Entries[i], want.Entries[i]) {
			t.Fatalf("entry %d = %+v, want %+v", i, got.Entries[i], want.Entries[i])
		}
	}
	if i, ok := got.Find(want.Entries[517].Path); !ok || i != 517 {
		t.Errorf("Find(%q) = %d, %v", want.Entries[517].Path, i, ok)
	}
	if _, ok := got.Find("/nope"); ok {
		t.Error("Find(/nope) found something")
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("baseline mode %o, want 0600", fi.Mode().Perm())
	}
}

func TestTamperedRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.db")
	if err := Save(p, testKey, sample(50)); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(p)
	cases := []struct {
		name string
		data []byte
		key  []byte
	}{
		{"flipped byte", flip(good, len(good)/2), testKey},
		{"truncated", good[:len(good)-100], testKey},
		{"truncated to nothing", good[:3], testKey},
		{"empty", nil, testKey},
		{"appended", append(append([]byte{}, good...), 0), testKey},
		{"other key", good, []byte("another key, same length.......!")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := filepath.Join(t.TempDir(), "x.db")
			os.WriteFile(q, tc.data, 0o600)
			_, err := Load(q, tc.key)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Load(%s) = %v, want ErrTampered", tc.name, err)
			}
			if !strings.Contains(err.Error(), q) || !strings.Contains(err.Error(), "refusing") {
				t.Errorf("error %q should name the file and say it is refused", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x40
	return c
}

func TestKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.db.key")
	k1, err := LoadOrCreateKey(p)
	if err != nil || len(k1) != KeySize {
		t.Fatalf("LoadOrCreateKey = %x, %v", k1, err)
	}
	k2, err := LoadOrCreateKey(p)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second LoadOrCreateKey = %x, %v; want the same key", k2, err)
	}
	os.Chmod(p, 0o644)
	if _, err := LoadKey(p); err == nil {
		t.Error("LoadKey accepted a key readable by others")
	}
}

// TestFullDiskKeepsOld fills a tiny tmpfs so the new baseline cannot be
// written, and checks the old one is intact and no temporary file is left.
func TestFullDiskKeepsOld(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: mounting a tmpfs must work")
		}
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	p := filepath.Join(dir, "b.db")
	small := sample(10)
	if err := Save(p, testKey, small); err != nil {
		t.Fatal(err)
	}
	err := Save(p, testKey, sample(5000))
	if err == nil {
		t.Fatal("Save of a baseline larger than the disk succeeded")
	}
	t.Logf("full disk: %v", err)
	got, err := Load(p, testKey)
	if err != nil || len(got.Entries) != 10 {
		t.Fatalf("old baseline after failed save: %v, %v", got, err)
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 {
		t.Errorf("directory holds %d files after failed save, want only the baseline", len(des))
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	encode(&buf, sample(3).Header, sample(3).Entries)
	f.Add(buf.Bytes())
	f.Add([]byte(magic))
	f.Add([]byte(magic + "\x00\x00\x00\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, body []byte) {
		h, entries, err := decodeBody(body)
		if err != nil {
			return
		}
		// What decodes must encode back to the same bytes.
		var out bytes.Buffer
		if err := encode(&out, h, entries); err != nil {
			t.Fatal(err)
		}
		if _, e2, err := decodeBody(out.Bytes()); err != nil || len(e2) != len(entries) {
			t.Fatalf("re-decoding: %v", err)
		}
	})
}
