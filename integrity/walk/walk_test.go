package walk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func walkAll(t *testing.T, root string, rules ...*policy.Rule) map[string]*Item {
	t.Helper()
	pol, err := policy.New("t", rules, true)
	must(t, err)
	got := map[string]*Item{}
	err = Walk(context.Background(), pol, Options{Root: root}, nil, func(it *Item) {
		c := *it
		got[it.Entry.Path] = &c
	})
	must(t, err)
	return got
}

func rule(p string) *policy.Rule {
	return &policy.Rule{Path: p, Depth: policy.Unlimited, Attrs: policy.DefaultAttrs}
}

// TestBadInput: special files are recorded without being opened (a FIFO
// opened blocking would hang the test), symlink loops are not followed,
// names that are not UTF-8 survive, mount points are not crossed.
func TestBadInput(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "t")
	must(t, os.MkdirAll(d, 0o755))
	must(t, unix.Mkfifo(filepath.Join(d, "fifo"), 0o644))
	l, err := net.Listen("unix", filepath.Join(d, "sock"))
	must(t, err)
	defer l.Close()
	must(t, os.Symlink("loop2", filepath.Join(d, "loop1")))
	must(t, os.Symlink("loop1", filepath.Join(d, "loop2")))
	must(t, os.Symlink(".", filepath.Join(d, "self")))
	bad := "bad\xff\xfename"
	must(t, os.WriteFile(filepath.Join(d, bad), []byte("x"), 0o644))
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(d, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	}
	got := walkAll(t, root, rule("/t"))
	wantTypes := map[string]byte{"/t/fifo": 'p', "/t/sock": 's', "/t/loop1": 'l', "/t/loop2": 'l', "/t/self": 'l', "/t/" + bad: 'f'}
	if os.Geteuid() == 0 {
		wantTypes["/t/null"] = 'c'
	}
	for p, typ := range wantTypes {
		it := got[p]
		if it == nil {
			t.Errorf("%q not recorded", p)
			continue
		}
		if it.Entry.Type != typ || it.Err != nil {
			t.Errorf("%q: type %c err %v, want type %c and no error", p, it.Entry.Type, it.Err, typ)
		}
		if typ != 'f' && it.Entry.Attrs.Any(policy.AttrHashes) {
			t.Errorf("%q: special file has digests", p)
		}
	}
	if got["/t/loop1"].Entry.Ext().Target != "loop2" {
		t.Errorf("loop1 target = %q", got["/t/loop1"].Entry.Ext().Target)
	}
	if len(got) != len(wantTypes)+1 {
		t.Errorf("recorded %d objects, want %d (symlinks must not be followed)", len(got), len(wantTypes)+1)
	}
}

func TestMountPointNotCrossed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	root := t.TempDir()
	m := filepath.Join(root, "t", "mnt")
	must(t, os.MkdirAll(m, 0o755))
	must(t, unix.Mount("tmpfs", m, "tmpfs", 0, "size=1m"))
	defer unix.Unmount(m, unix.MNT_DETACH)
	must(t, os.WriteFile(filepath.Join(m, "inside"), []byte("x"), 0o644))
	got := walkAll(t, root, rule("/t"))
	if got["/t/mnt"] == nil || got["/t/mnt/inside"] != nil {
		t.Errorf("mount point: recorded %v; want /t/mnt itself and nothing inside", keys(got))
	}
	r := rule("/t")
	r.CrossMounts = true
	if got := walkAll(t, root, r); got["/t/mnt/inside"] == nil {
		t.Errorf("cross_mounts: %v lacks /t/mnt/inside", keys(got))
	}
}

func keys(m map[string]*Item) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}

// TestChangingWhileHashed: a file appended to all the time is reported as
// unstable, never with a digest that matches no state of the file.
func TestChangingWhileHashed(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "t"), 0o755))
	p := filepath.Join(root, "t", "busy")
	must(t, os.WriteFile(p, make([]byte, 32<<20), 0o644))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	defer f.Close()
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			f.Write([]byte("x"))
			time.Sleep(50 * time.Microsecond)
		}
	}()
	got := walkAll(t, root, rule("/t"))
	stop.Store(true)
	<-done
	it := got["/t/busy"]
	if it == nil || !errors.Is(it.Err, ErrUnstable) || it.Entry.Attrs.Any(policy.AttrHashes) || it.Entry.Flags&baseline.FlagError == 0 {
		t.Fatalf("busy file: %+v, want ErrUnstable without digests", it)
	}
}

// TestPermissionDenied runs the walk as nobody in a child process: the
// unreadable file and directory are per-item errors and the rest is walked.
func TestPermissionDenied(t *testing.T) {
	if os.Getenv("MAMORI_WALK_CHILD") != "" {
		walkChild()
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to nobody")
	}
	root, err := os.MkdirTemp("", "walkperm")
	must(t, err)
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755)
	d := filepath.Join(root, "t")
	must(t, os.Mkdir(d, 0o755))
	must(t, os.Mkdir(filepath.Join(d, "closed"), 0o700))
	must(t, os.WriteFile(filepath.Join(d, "closed", "x"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(d, "secret"), []byte("s"), 0o600))
	must(t, os.WriteFile(filepath.Join(d, "open"), []byte("o"), 0o644))
	// The test binary sits in a private build directory: give nobody a copy.
	self, err := os.ReadFile(os.Args[0])
	must(t, err)
	bin := filepath.Join(root, "walk.test")
	must(t, os.WriteFile(bin, self, 0o755))
	cmd := exec.Command(bin, "-test.run=^TestPermissionDenied$")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "MAMORI_WALK_CHILD="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var res map[string]string
	line := out[strings.Index(string(out), "{"):]
	line = line[:strings.Index(string(line), "\n")]
	must(t, json.Unmarshal(line, &res))
	want := map[string]string{"/t": "ok", "/t/open": "ok", "/t/closed": "listing directory: open " + d + "/closed: permission denied", "/t/secret": "opening: permission denied"}
	for p, w := range want {
		if res[p] != w {
			t.Errorf("as nobody, %s: %q, want %q", p, res[p], w)
		}
	}
	if len(res) != len(want) {
		t.Errorf("as nobody: %v", res)
	}
}

func walkChild() {
	root := os.Getenv("MAMORI_WALK_CHILD")
	pol, _ := policy.New("t", []*policy.Rule{rule("/t")}, true)
	res := map[string]string{}
	Walk(context.Background(), pol, Options{Root: root}, nil, func(it *Item) {
		s := "ok"
		if it.Err != nil {
			s = it.Err.Error()
		}
		if prev, ok := res[it.Entry.Path]; ok && prev != "ok" {
			s = prev
		}
		res[it.Entry.Path] = s
	})
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}
