package watch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
)

// TestInotifyWatchLimit runs the inotify watch in a child process in its
// own user namespace, whose inotify watch limit (a per-namespace sysctl)
// is set to 4, over a tree of 12 directories: the limit must be detected
// and reported in Health, not silently ignored.
func TestInotifyWatchLimit(t *testing.T) {
	if root := os.Getenv("MAMORI_LIMIT_CHILD"); root != "" {
		limitChild(root)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("creating the user namespace for a private limit needs root here")
	}
	root := t.TempDir()
	for i := 0; i < 12; i++ {
		must(t, os.MkdirAll(filepath.Join(root, "w", fmt.Sprintf("d%02d", i)), 0o755))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInotifyWatchLimit$")
	cmd.Env = append(os.Environ(), "MAMORI_LIMIT_CHILD="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("user namespace with a private inotify limit unavailable: %v %s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "HEALTH: inotify watch limit reached (fs.inotify.max_user_watches=") || !strings.Contains(s, "directories not watched") {
		t.Errorf("child output %q, want the watch limit reported", s)
	}
	t.Log(strings.TrimSpace(s))
}

func limitChild(root string) {
	if err := os.WriteFile("/proc/sys/user/max_inotify_watches", []byte("4"), 0o644); err != nil {
		fmt.Println("SETUP:", err)
		os.Exit(3)
	}
	pol, _ := policy.New("t", []*policy.Rule{{Path: "/w", Depth: policy.Unlimited, Attrs: policy.DefaultAttrs}}, true)
	w, err := New(Config{Policy: pol, Baseline: &baseline.Baseline{}, Root: root, Mode: ModeInotify})
	if err != nil {
		fmt.Println("NEW:", err)
		os.Exit(3)
	}
	fmt.Println("HEALTH:", w.Health())
}
