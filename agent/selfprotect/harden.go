// Package selfprotect guards the agent's own footprint: its data directory
// (certificates, key, cached policy, queued events) is made root-only, and
// its binary and configuration files are watched so that a change is
// reported as an event.
package selfprotect

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Harden makes dir and everything below it owner-only (directories 0700,
// files 0600; owned by root when running as root) and returns the paths it
// had to fix. Symlinks are left alone:
// following them could chmod files outside the data directory.
func Harden(dir string) ([]string, error) {
	var fixed []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else if !fi.Mode().IsRegular() {
			return nil
		}
		changed := false
		// Owner-only means nothing if the owner is someone else: as root,
		// take back files another account owns.
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
			if err := os.Lchown(p, 0, 0); err != nil {
				return fmt.Errorf("hardening %s: %w", p, err)
			}
			changed = true
		}
		if fi.Mode().Perm()&^want != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&want); err != nil {
				return fmt.Errorf("hardening %s: %w", p, err)
			}
			changed = true
		}
		if changed {
			fixed = append(fixed, p)
		}
		return nil
	})
	if err != nil {
		return fixed, fmt.Errorf("hardening %s: %w", dir, err)
	}
	return fixed, nil
}

// FixModes makes each existing path owner-only (0700 for directories, 0600
// for files) and returns those it changed. Missing paths are skipped.
func FixModes(paths []string) []string {
	var fixed []string
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			continue
		}
		want := fs.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm()&^want != 0 {
			if os.Chmod(p, fi.Mode().Perm()&want) == nil {
				fixed = append(fixed, p)
			}
		}
	}
	return fixed
}
