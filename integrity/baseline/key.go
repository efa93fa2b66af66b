package baseline

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// KeySize is the length of a MAC key.
const KeySize = 32

// LegacyKeyPath is where keys were kept before they moved apart from
// baselines: beside the baseline. A key found there is not trusted by
// default, since whoever can write the baseline's directory can put one
// there and re-seal a forged baseline with it.
func LegacyKeyPath(baselinePath string) string { return baselinePath + ".key" }

// LoadKey reads a MAC key file. It refuses a key that another user could
// have replaced or read: not a regular file (a symlink could point
// anywhere), owned by someone else, readable or writable by group or
// others, or in a directory group or others can write (they could swap
// the file for their own key).
func LoadKey(path string) ([]byte, error) {
	if err := checkKeyFile(path); err != nil {
		return nil, err
	}
	k, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading baseline key: %w", err)
	}
	if len(k) < 16 {
		return nil, fmt.Errorf("reading baseline key: %s holds %d bytes, want at least 16", path, len(k))
	}
	return k, nil
}

func checkKeyFile(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("reading baseline key: %w", &fs.PathError{Op: "lstat", Path: path, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("reading baseline key: %s is not a regular file (a symlink or special file is refused)", path)
	}
	if perm := st.Mode & 0o777; perm&0o077 != 0 {
		return fmt.Errorf("reading baseline key: %s is accessible to others (mode %04o); chmod 600 it", path, perm)
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		return fmt.Errorf("reading baseline key: %s is owned by uid %d, not by uid %d running mamori", path, st.Uid, uid)
	}
	dir := filepath.Dir(path)
	var ds unix.Stat_t
	if err := unix.Stat(dir, &ds); err != nil {
		return fmt.Errorf("reading baseline key: %w", &fs.PathError{Op: "stat", Path: dir, Err: err})
	}
	if ds.Mode&0o022 != 0 {
		return fmt.Errorf("reading baseline key: its directory %s is writable by others (mode %04o), who could replace the key", dir, ds.Mode&0o7777)
	}
	return nil
}

// LoadOrCreateKey returns the key at path, creating a random one (mode
// 0600, directory 0700 if missing) if there is none yet.
func LoadOrCreateKey(path string) ([]byte, error) {
	k, err := LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k = make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("creating baseline key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating baseline key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating baseline key: %w", err)
	}
	if _, err := f.Write(k); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("creating baseline key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("creating baseline key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("creating baseline key: %w", err)
	}
	// The key must survive a crash as surely as the baseline it seals.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	if _, err := LoadKey(path); err != nil { // same checks as every later use
		return nil, err
	}
	return k, nil
}
