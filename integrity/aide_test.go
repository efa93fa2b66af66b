package integrity

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/policy"
)

// requireTool skips when a tool is missing, except in CI where the test
// command installs it and its absence is a failure.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (CI installs it from scripts/deps/integrity.txt)", name)
		}
		t.Skipf("%s not installed: differential test needs it", name)
	}
	return p
}

var aideEntry = regexp.MustCompile(`^[fdlcbps?]\S*\s*[^:]*:\s*(/.*)$`)

// aideReport parses `aide --check` output into "added|removed|changed path".
func aideReport(out []byte) []string {
	var got []string
	sect := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Added entries:"):
			sect = Added
			continue
		case strings.HasPrefix(line, "Removed entries:"):
			sect = Removed
			continue
		case strings.HasPrefix(line, "Changed entries:"):
			sect = Changed
			continue
		case strings.HasPrefix(line, "Detailed information"), strings.HasPrefix(line, "The attributes"):
			sect = ""
		}
		if m := aideEntry.FindStringSubmatch(line); sect != "" && m != nil {
			got = append(got, sect+" "+m[1])
		}
	}
	sort.Strings(got)
	return got
}

// TestAIDEParity builds the same tree, makes the same modifications and
// compares the set of paths AIDE and mamori report, with equivalent
// attributes (AIDE p+i+n+u+g+s+m+c+sha256+xattrs+acl).
func TestAIDEParity(t *testing.T) {
	aide := requireTool(t, "aide")
	if os.Geteuid() != 0 {
		t.Skip("the modification set includes chown: needs root")
	}
	work := t.TempDir()
	d := filepath.Join(work, "tree")
	for i := 0; i < 40; i++ {
		sub := filepath.Join(d, fmt.Sprintf("dir%02d", i%7))
		must(t, os.MkdirAll(sub, 0o755))
		must(t, os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", i)), bytes.Repeat([]byte{byte(i)}, 100+i*37), 0o644))
	}
	must(t, os.Symlink("f000", filepath.Join(d, "dir00", "link")))
	must(t, os.MkdirAll(filepath.Join(d, "quiet"), 0o755))
	must(t, os.WriteFile(filepath.Join(d, "quiet", "same"), []byte("same"), 0o644))

	conf := filepath.Join(work, "aide.conf")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`database_in=file:%[1]s/aide.db
database_out=file:%[1]s/aide.db.new
gzip_dbout=no
report_url=stdout
log_level=warning
Sha = p+i+n+u+g+s+m+c+sha256+xattrs+acl
%[2]s Sha
`, work, d)), 0o644))
	pol, err := policy.Parse("parity.yaml", []byte(fmt.Sprintf("rules:\n  - path: %s\n    attributes: [meta, sha256, xattrs, acl]\n", d)), true)
	must(t, err)
	cfg := Config{Policy: pol, Baseline: filepath.Join(work, "mamori.db"), Key: []byte("parity-key-0123456789")}
	ctx := context.Background()

	if out, err := exec.Command(aide, "--config", conf, "--init").CombinedOutput(); err != nil {
		t.Fatalf("aide --init: %v\n%s", err, out)
	}
	must(t, os.Rename(filepath.Join(work, "aide.db.new"), filepath.Join(work, "aide.db")))
	_, err = Init(ctx, cfg)
	must(t, err)
	// AIDE keeps mtime and ctime in whole seconds: modifications within
	// the second of --init would be invisible to it (mamori keeps ns).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))

	p := func(s string) string { return filepath.Join(d, s) }
	must(t, os.WriteFile(p("dir01/new"), []byte("new"), 0o644))                // create
	must(t, os.Remove(p("dir02/f002")))                                        // delete
	must(t, os.WriteFile(p("dir03/f003"), []byte("different"), 0o644))         // modify
	must(t, os.Chmod(p("dir04/f004"), 0o600))                                  // chmod
	must(t, os.Lchown(p("dir05/f005"), 4321, 4321))                            // chown
	must(t, os.Chtimes(p("dir06/f006"), time.Unix(1e9, 0), time.Unix(1e9, 0))) // touch
	must(t, os.Rename(p("dir00/f007"), p("dir00/f007.renamed")))               // rename
	must(t, os.Link(p("dir01/f008"), p("dir02/hard")))                         // hard link
	must(t, os.Symlink("f014", p("dir00/link.tmp")))                           // symlink retarget
	must(t, os.Rename(p("dir00/link.tmp"), p("dir00/link")))
	must(t, unix.Setxattr(p("dir03/f010"), "user.mamori", []byte("x"), 0)) // xattr
	fi, _ := os.Stat(p("dir04/f011"))                                      // same size, mtime kept
	must(t, os.WriteFile(p("dir04/f011"), bytes.Repeat([]byte{'Z'}, int(fi.Size())), 0o644))
	must(t, os.Chtimes(p("dir04/f011"), fi.ModTime(), fi.ModTime()))

	out, err := exec.Command(aide, "--config", conf, "--check").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() >= 14) {
		t.Fatalf("aide --check: %v\n%s", err, out)
	}
	want := aideReport(out)
	rep, err := Check(ctx, cfg)
	must(t, err)
	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.What+" "+f.Path)
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mamori reports\n%s\nAIDE reports\n%s\n(aide output:\n%s)", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
	if len(want) < 12 {
		t.Errorf("AIDE reported only %d entries; parsing its report failed?\n%s", len(want), out)
	}
	t.Logf("%d entries reported by both", len(got))
}
