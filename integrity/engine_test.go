package integrity

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/policy"
	"github.com/mamori-sec/mamori/integrity/walk"
)

// newTree builds a small fixture tree under root/data and a config that
// watches /data through --root.
func newTree(t *testing.T, attrs policy.Attr) (string, Config) {
	t.Helper()
	root := t.TempDir()
	d := filepath.Join(root, "data")
	must(t, os.MkdirAll(filepath.Join(d, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(d, "a"), []byte("alpha\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(d, "b"), []byte("bravo\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(d, "sub", "c"), []byte("charlie\n"), 0o600))
	must(t, os.Symlink("a", filepath.Join(d, "l")))
	pol, err := policy.New("test", []*policy.Rule{{Path: "/data", Depth: policy.Unlimited, Attrs: attrs}}, true)
	must(t, err)
	cfg := Config{Policy: pol, Baseline: filepath.Join(root, "base.db"), Key: []byte("0123456789abcdef0123456789abcdef"), Root: root}
	return root, cfg
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// summary renders findings as "what path attr,attr" lines, sorted.
func summary(rep *Report) []string {
	var out []string
	for _, f := range rep.Findings {
		var attrs []string
		for _, c := range f.Changes {
			attrs = append(attrs, c.Attr)
		}
		out = append(out, strings.TrimSpace(f.What+" "+f.Path+" "+strings.Join(attrs, ",")))
	}
	sort.Strings(out)
	return out
}

func TestScenarios(t *testing.T) {
	dirChanged := "changed /data mtime,ctime"
	cases := []struct {
		name   string
		root   bool
		mutate func(t *testing.T, d string)
		want   []string
	}{
		{"create", false, func(t *testing.T, d string) {
			must(t, os.WriteFile(filepath.Join(d, "new"), []byte("x"), 0o644))
		}, []string{"added /data/new", dirChanged}},
		{"delete", false, func(t *testing.T, d string) {
			must(t, os.Remove(filepath.Join(d, "b")))
		}, []string{dirChanged, "removed /data/b"}},
		{"modify", false, func(t *testing.T, d string) {
			f, err := os.OpenFile(filepath.Join(d, "a"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			f.WriteString("more\n")
			must(t, f.Close())
		}, []string{"changed /data/a size,mtime,ctime,sha256"}},
		{"modify-same-size-keep-mtime", false, func(t *testing.T, d string) {
			p := filepath.Join(d, "a")
			fi, _ := os.Stat(p)
			must(t, os.WriteFile(p, []byte("ALPHA\n"), 0o644))
			must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
		}, []string{"changed /data/a ctime,sha256"}},
		{"chmod", false, func(t *testing.T, d string) {
			must(t, os.Chmod(filepath.Join(d, "sub", "c"), 0o640))
		}, []string{"changed /data/sub/c mode,ctime"}},
		{"chown", true, func(t *testing.T, d string) {
			must(t, os.Lchown(filepath.Join(d, "b"), 1234, 5678))
		}, []string{"changed /data/b uid,gid,ctime"}},
		{"touch-only", false, func(t *testing.T, d string) {
			now := time.Now().Add(time.Hour)
			must(t, os.Chtimes(filepath.Join(d, "b"), now, now))
		}, []string{"changed /data/b mtime,ctime"}},
		{"rename", false, func(t *testing.T, d string) {
			must(t, os.Rename(filepath.Join(d, "b"), filepath.Join(d, "b2")))
		}, []string{"added /data/b2", dirChanged, "removed /data/b"}},
		{"hard-link", false, func(t *testing.T, d string) {
			must(t, os.Link(filepath.Join(d, "a"), filepath.Join(d, "sub", "h")))
		}, []string{"added /data/sub/h", "changed /data/a ctime,nlink", "changed /data/sub mtime,ctime"}},
		{"symlink-retarget", false, func(t *testing.T, d string) {
			must(t, os.Symlink("b", filepath.Join(d, "l.tmp")))
			must(t, os.Rename(filepath.Join(d, "l.tmp"), filepath.Join(d, "l")))
		}, []string{dirChanged, "changed /data/l mtime,ctime,inode,target"}},
		{"xattr", false, func(t *testing.T, d string) {
			must(t, unix.Setxattr(filepath.Join(d, "a"), "user.mamori", []byte("v1"), 0))
		}, []string{"changed /data/a ctime,xattrs"}},
		{"nothing", false, func(t *testing.T, d string) {}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			root, cfg := newTree(t, policy.DefaultAttrs)
			ctx := context.Background()
			if _, err := Init(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			// Coarse kernel timestamps: let the clock tick so ctime moves.
			time.Sleep(20 * time.Millisecond)
			tc.mutate(t, filepath.Join(root, "data"))
			rep, err := Check(ctx, cfg)
			must(t, err)
			if got := summary(rep); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("check after %s =\n%s\nwant\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestUpdateAcceptsSelected(t *testing.T) {
	root, cfg := newTree(t, policy.DefaultAttrs)
	ctx := context.Background()
	_, err := Init(ctx, cfg)
	must(t, err)
	time.Sleep(20 * time.Millisecond)
	d := filepath.Join(root, "data")
	must(t, os.WriteFile(filepath.Join(d, "a"), []byte("changed\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(d, "sub", "c"), []byte("changed too\n"), 0o600))
	up := cfg
	up.Only = []string{"/data/sub"}
	if _, err := Update(ctx, up); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, cfg)
	must(t, err)
	want := "changed /data/a size,mtime,ctime,sha256"
	if got := strings.Join(summary(rep), "\n"); got != want {
		t.Errorf("check after update of /data/sub = %q, want %q", got, want)
	}
	if _, err := Update(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(ctx, cfg)
	must(t, err)
	if len(rep.Findings) != 0 {
		t.Errorf("check after full update = %v, want nothing", summary(rep))
	}
}

func TestTrustMetadataSkipsHashing(t *testing.T) {
	root, cfg := newTree(t, policy.DefaultAttrs|policy.AttrBLAKE3|policy.AttrXXH3)
	ctx := context.Background()
	_, err := Init(ctx, cfg)
	must(t, err)
	time.Sleep(20 * time.Millisecond)
	must(t, os.WriteFile(filepath.Join(root, "data", "b"), []byte("BRAVO\n"), 0o644))
	cfg.TrustMetadata = true
	cfg.Stats = &walk.Stats{}
	rep, err := Check(ctx, cfg)
	must(t, err)
	want := "changed /data/b mtime,ctime,sha256,blake3,xxh3"
	if got := strings.Join(summary(rep), "\n"); got != want {
		t.Errorf("trusted check = %q, want %q", got, want)
	}
	if h := cfg.Stats.Hashed.Load(); h != 1 {
		t.Errorf("trusted check hashed %d files, want 1 (only the one whose metadata moved)", h)
	}
}

func TestExpectedChanges(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "log")
	must(t, os.MkdirAll(d, 0o755))
	must(t, os.WriteFile(filepath.Join(d, "syslog"), []byte("x"), 0o640))
	pol, err := policy.Parse("t.yaml", []byte(`
rules:
  - path: /log
    attributes: [meta, sha256]
    expected_changes: [content, added, removed]
`), true)
	must(t, err)
	cfg := Config{Policy: pol, Baseline: filepath.Join(root, "b.db"), Key: []byte("k0123456789abcdef"), Root: root}
	ctx := context.Background()
	_, err = Init(ctx, cfg)
	must(t, err)
	time.Sleep(20 * time.Millisecond)
	must(t, os.WriteFile(filepath.Join(d, "syslog"), []byte("grown log"), 0o640))
	must(t, os.WriteFile(filepath.Join(d, "syslog.1"), []byte("rotated"), 0o640))
	rep, err := Check(ctx, cfg)
	must(t, err)
	if len(rep.Findings) != 0 {
		t.Errorf("expected changes reported: %v", summary(rep))
	}
	must(t, os.Chmod(filepath.Join(d, "syslog"), 0o666))
	rep, err = Check(ctx, cfg)
	must(t, err)
	if got := strings.Join(summary(rep), "\n"); got != "changed /log/syslog mode" {
		t.Errorf("chmod of a log = %q, want mode change", got)
	}
}

// TestAlwaysRehash: a rule marked always_rehash is hashed even under
// --trust-metadata, so a content change with metadata restored by a raw
// writer would still show.
func TestAlwaysRehash(t *testing.T) {
	_, cfg := newTree(t, policy.DefaultAttrs)
	r := cfg.Policy.RuleAt("/data")
	r.AlwaysRehash = true
	ctx := context.Background()
	_, err := Init(ctx, cfg)
	must(t, err)
	cfg.TrustMetadata = true
	cfg.Stats = &walk.Stats{}
	_, err = Check(ctx, cfg)
	must(t, err)
	if h := cfg.Stats.Hashed.Load(); h != 3 {
		t.Errorf("always_rehash under --trust-metadata hashed %d files, want all 3", h)
	}
}
