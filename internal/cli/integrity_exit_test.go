package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestIntegrityCLIHelper is the child of TestIntegrityPerItemErrors: the
// test binary re-executed as an unprivileged user, running the CLI.
func TestIntegrityCLIHelper(t *testing.T) {
	args := os.Getenv("MAMORI_CLI_HELPER_ARGS")
	if args == "" {
		t.Skip("helper process: runs only when TestIntegrityPerItemErrors re-executes the test binary")
	}
	os.Exit(Main(strings.Split(args, "\x1f")))
}

// TestIntegrityPerItemErrors: files the user cannot read and a directory
// it cannot list are reported as errors, everything else is still
// recorded and checked, and init and check exit 2 (error ahead of
// changes), as the exit codes say.
func TestIntegrityPerItemErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the CLI as another user (permission denied does not happen to root)")
	}
	const nobody = 65534
	dir, err := os.MkdirTemp("", "mamori-exit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(dir, 0o755))
	// The test binary sits in a root-only build directory: copy it where
	// the child user can run it.
	bin := filepath.Join(dir, "cli.test")
	copyFile(t, os.Args[0], bin, 0o755)
	tree := filepath.Join(dir, "tree")
	must(os.MkdirAll(filepath.Join(tree, "closed"), 0o755))
	must(os.WriteFile(filepath.Join(tree, "ok"), []byte("ok"), 0o644))
	must(os.WriteFile(filepath.Join(tree, "secret"), []byte("root only"), 0o600))
	must(os.WriteFile(filepath.Join(tree, "closed", "inner"), []byte("x"), 0o644))
	must(os.Chmod(filepath.Join(tree, "closed"), 0o700))
	state := filepath.Join(dir, "state")
	must(os.MkdirAll(state, 0o700))
	must(os.Chown(state, nobody, nobody))

	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, "-test.run=^TestIntegrityCLIHelper$")
		cmd.Env = append(os.Environ(),
			"MAMORI_CLI_HELPER_ARGS="+strings.Join(args, "\x1f"),
			"MAMORI_INTEGRITY_DIR="+filepath.Join(state, "db"),
			"MAMORI_INTEGRITY_KEY="+filepath.Join(state, "keys", "integrity.key"),
			"HOME="+state)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}

	out, stderr, code := run("integrity", "init", "--no-progress", tree)
	if code != 2 {
		t.Fatalf("init with unreadable items: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	for _, p := range []string{"secret", "closed"} {
		if !strings.Contains(out, filepath.Join(tree, p)) || !strings.Contains(out, "permission denied") {
			t.Errorf("init output does not name %s as permission denied:\n%s", p, out)
		}
	}
	if !strings.Contains(stderr, "2 errors") {
		t.Errorf("init summary: %s", stderr)
	}

	// Unchanged tree: still exit 2, the same items unreadable.
	out, stderr, code = run("integrity", "check", "--no-progress", tree)
	if code != 2 || strings.Contains(out, "changed") || strings.Contains(out, "removed") {
		t.Errorf("check of unchanged tree with unreadable items: exit %d, want 2 and errors only\n%s\n%s", code, out, stderr)
	}

	// A real change is still reported in full, and the exit code stays 2.
	must(os.WriteFile(filepath.Join(tree, "ok"), []byte("changed"), 0o644))
	out, stderr, code = run("integrity", "check", "--no-progress", "--json", tree)
	if code != 2 || !strings.Contains(out, `"change":"changed"`) || !strings.Contains(out, filepath.Join(tree, "ok")) {
		t.Errorf("check with a change and unreadable items: exit %d, want 2 with the change reported\n%s\n%s", code, out, stderr)
	}
	if strings.Count(out, `"kind":"integrity.error"`) != 2 {
		t.Errorf("want 2 error events:\n%s", out)
	}

	// Once everything is readable, the exit codes are the usual ones.
	must(os.Chmod(filepath.Join(tree, "secret"), 0o644))
	must(os.Chmod(filepath.Join(tree, "closed"), 0o755))
	_, _, code = run("integrity", "update", "--no-progress", tree)
	if code != 0 {
		t.Errorf("update once readable: exit %d", code)
	}
	if out, stderr, code = run("integrity", "check", "--no-progress", tree); code != 0 {
		t.Errorf("clean check: exit %d\n%s\n%s", code, out, stderr)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
