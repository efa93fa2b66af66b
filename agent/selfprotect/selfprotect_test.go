package selfprotect

import (
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
)

func TestHardenFixesOpenModes(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o777)
	os.WriteFile(filepath.Join(dir, "sub", "key.pem"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(dir, "ok"), []byte("k"), 0o600)
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "link"))
	fixed, err := Harden(dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(fixed)
	if len(fixed) != 3 {
		t.Fatalf("fixed %v, want the dir, sub and key.pem", fixed)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "sub"): 0o700, filepath.Join(dir, "sub", "key.pem"): 0o600, outside: 0o644} {
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if again, _ := Harden(dir); len(again) != 0 {
		t.Errorf("second Harden fixed %v, want nothing", again)
	}
}

func TestWatcherReportsChanges(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mamori")
	conf := filepath.Join(dir, "agent.conf")
	gone := filepath.Join(dir, "later")
	os.WriteFile(bin, []byte("binary v1"), 0o755)
	os.WriteFile(conf, []byte("a=1"), 0o600)
	w := NewWatcher([]string{bin, conf, gone, bin})
	if ch := w.Check(); len(ch) != 0 {
		t.Fatalf("Check without changes = %+v", ch)
	}
	// replace the binary by rename, as an upgrade or an attacker would
	tmp := filepath.Join(dir, ".new")
	os.WriteFile(tmp, []byte("binary v2"), 0o755)
	os.Rename(tmp, bin)
	os.Chmod(conf, 0o644)
	os.WriteFile(gone, []byte("x"), 0o600)
	got := map[string]string{}
	for _, c := range w.Check() {
		got[filepath.Base(c.Path)+"/"+c.What] = c.New
	}
	for _, want := range []string{"mamori/content", "agent.conf/mode", "later/created"} {
		if _, ok := got[want]; !ok {
			t.Errorf("changes %v lack %s", got, want)
		}
	}
	os.Remove(conf)
	if ch := w.Check(); len(ch) != 1 || ch[0].What != "removed" {
		t.Fatalf("after removal: %+v", ch)
	}
}

func TestHardenTakesBackOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "client.pem")
	os.WriteFile(f, []byte("k"), 0o600)
	os.Chown(f, 1000, 1000)
	fixed, err := Harden(dir)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	syscall.Stat(f, &st)
	if st.Uid != 0 || len(fixed) == 0 {
		t.Fatalf("owner %d after Harden (fixed %v), want root", st.Uid, fixed)
	}
}
