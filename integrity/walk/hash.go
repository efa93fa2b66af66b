package walk

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
)

// Sentinels for items that could not be recorded as they are; callers
// report them as errors, not as changes.
var (
	// ErrUnstable: the file changed, or was replaced, while it was read.
	ErrUnstable = errors.New("file changed while being hashed")
	// ErrVanished: the object disappeared between listing and reading.
	ErrVanished = errors.New("file vanished during the walk")
)

const openFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY

// hashFile reads the regular file at full, whose lstat is st, and fills the
// digests of e that want asks for. It fails with ErrUnstable when the file
// seen through the descriptor is not the one lstat saw, or when its size,
// mtime or ctime moved while it was read.
//
// Per file this costs open, read(s), one fstat and close: the identity
// check (inode, device, type) is made on the fstat after reading rather
// than on a second one before, and the read that would only return EOF is
// skipped once st.Size bytes are in (the fstat proves the size did not
// move). On a 20k-file tree these two syscalls were a tenth of the walk's
// system time. Reading is bounded by st.Size, so an object swapped in
// between lstat and open (a device, a growing file) is never read past the
// size lstat saw.
func hashFile(full string, st *unix.Stat_t, want policy.Attr, e *baseline.Entry, buf []byte) (int64, error) {
	fd, err := unix.Open(full, openFlags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		// O_NOATIME is refused on files we do not own unless privileged.
		fd, err = unix.Open(full, openFlags, 0)
	}
	switch {
	case err == unix.ENOENT:
		return 0, ErrVanished
	case err == unix.ELOOP || err == unix.ENXIO:
		return 0, fmt.Errorf("%w: replaced by another kind of file", ErrUnstable)
	case err != nil:
		return 0, fmt.Errorf("opening: %w", err)
	}
	defer unix.Close(fd)
	var hs []hash.Hash
	var s2, b3 hash.Hash
	var x3 *xxh3.Hasher
	if want.Has(policy.AttrSHA256) {
		s2 = sha256.New()
		hs = append(hs, s2)
	}
	if want.Has(policy.AttrBLAKE3) {
		b3 = blake3.New()
		hs = append(hs, b3)
	}
	if want.Has(policy.AttrXXH3) {
		x3 = xxh3.New()
		hs = append(hs, x3)
	}
	var n int64
	unstable := false
	for {
		m, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			// Only a FIFO or socket swapped in after lstat says this.
			unstable = true
			break
		}
		if err != nil {
			return n, fmt.Errorf("reading: %w", err)
		}
		if m == 0 {
			break
		}
		n += int64(m)
		if n > st.Size {
			unstable = true // grew, or not the file lstat saw
			break
		}
		for _, h := range hs {
			h.Write(buf[:m])
		}
		if n == st.Size {
			break
		}
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return n, fmt.Errorf("stating: %w", err)
	}
	if after.Ino != st.Ino || after.Dev != st.Dev || after.Mode&unix.S_IFMT != unix.S_IFREG {
		return n, fmt.Errorf("%w: replaced between stat and open", ErrUnstable)
	}
	if unstable || after.Size != st.Size || after.Mtim != st.Mtim || after.Ctim != st.Ctim || n != st.Size {
		return n, ErrUnstable
	}
	if s2 != nil {
		s2.Sum(e.SHA256[:0])
	}
	if b3 != nil {
		b3.Sum(e.Mut().BLAKE3[:0])
	}
	if x3 != nil {
		e.XXH3 = x3.Sum64()
	}
	return n, nil
}
