//go:build linux

package watch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const fanMask = unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB | unix.FAN_CREATE | unix.FAN_DELETE |
	unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF | unix.FAN_ONDIR

// fanotify watches whole filesystems (FAN_MARK_FILESYSTEM) and reports a
// directory handle plus a name per event (FAN_REPORT_DFID_NAME): no
// per-directory marks, creations and deletions included, and the pid of
// the process that acted. Handles are resolved to paths with
// open_by_handle_at against a descriptor on the same filesystem.
type fanotify struct {
	cfg      Config
	fd       int
	mountFDs map[[2]int32]int
	dirs     map[string]string // handle key → directory path
	actors   map[int]cachedActor
}

func newFanotify(cfg Config) (*fanotify, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_REPORT_DFID_NAME, unix.O_RDONLY|unix.O_LARGEFILE)
	if err != nil {
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	f := &fanotify{cfg: cfg, fd: fd, mountFDs: map[[2]int32]int{}, dirs: map[string]string{}, actors: map[int]cachedActor{}}
	for _, r := range cfg.Policy.Rules {
		p := existing(cfg.Root + r.Path)
		var sfs unix.Statfs_t
		if err := unix.Statfs(p, &sfs); err != nil {
			continue
		}
		fsid := sfs.Fsid.Val
		if _, ok := f.mountFDs[fsid]; ok {
			continue
		}
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, fanMask, unix.AT_FDCWD, p); err != nil {
			f.close()
			return nil, fmt.Errorf("fanotify_mark %s: %w", p, err)
		}
		// open_by_handle_at refuses an O_PATH descriptor: open the
		// directory itself, or the one holding the file.
		dp := p
		if st, err := os.Lstat(p); err == nil && !st.IsDir() {
			dp = parentOf(p)
		}
		mfd, err := unix.Open(dp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("opening %s: %w", p, err)
		}
		f.mountFDs[fsid] = mfd
	}
	if len(f.mountFDs) == 0 {
		f.close()
		return nil, errors.New("no watched path exists")
	}
	return f, nil
}

// existing returns p or its nearest existing ancestor, so a rule for a
// file not yet created still marks its filesystem.
func existing(p string) string {
	for {
		if _, err := os.Lstat(p); err == nil || p == "/" || p == "." {
			return p
		}
		i := strings.LastIndexByte(p, '/')
		if i <= 0 {
			return "/"
		}
		p = p[:i]
	}
}

func (f *fanotify) health() string { return "" }

func (f *fanotify) close() {
	for _, m := range f.mountFDs {
		unix.Close(m)
	}
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
}

func (f *fanotify) run(ctx context.Context, out chan<- rawEvent) error {
	buf := make([]byte, 256<<10)
	pfd := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		n, err := unix.Poll(pfd, 100)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("polling fanotify: %w", err)
		}
		m, err := unix.Read(f.fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading fanotify: %w", err)
		}
		now := time.Now()
		f.parse(buf[:m], now, out)
	}
	return nil
}

// fanFinal events end a change. The kernel merges a queued FAN_MODIFY into
// the FAN_CLOSE_WRITE that follows it, so a close counts even with MODIFY
// set; a file written again at once fails verification as unstable and is
// looked at once more.
const fanFinal = unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF

const metaSize = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

func (f *fanotify) parse(b []byte, now time.Time, out chan<- rawEvent) {
	for len(b) >= metaSize {
		md := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&b[0]))
		evLen := int(md.Event_len)
		if evLen < metaSize || evLen > len(b) {
			return
		}
		ev := b[:evLen]
		b = b[evLen:]
		if md.Fd >= 0 {
			unix.Close(int(md.Fd))
		}
		if md.Mask&unix.FAN_Q_OVERFLOW != 0 {
			continue
		}
		path, ok := f.eventPath(ev[md.Metadata_len:])
		if !ok {
			continue
		}
		logical, ok := f.logical(path)
		if ok && md.Mask&unix.FAN_ONDIR != 0 && md.Mask&(unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO) != 0 && f.touchesScope(logical) {
			// A directory moved into, out of or within the watched
			// paths: cached handle → path entries may be stale. Moves
			// elsewhere (build trees, caches) leave the cache alone.
			clear(f.dirs)
		}
		if !ok || f.cfg.Policy.RuleFor(logical) == nil {
			continue
		}
		a := f.actor(int(md.Pid), now)
		select {
		case out <- rawEvent{path: logical, actor: &a, t: now, final: md.Mask&fanFinal != 0}:
		default:
			// The consumer is far behind; a burst this large is
			// caught by the next full check.
		}
	}
}

func (f *fanotify) logical(p string) (string, bool) {
	if f.cfg.Root == "" {
		return p, true
	}
	if p == f.cfg.Root {
		return "/", true
	}
	if strings.HasPrefix(p, f.cfg.Root+"/") {
		return p[len(f.cfg.Root):], true
	}
	return "", false
}

// eventPath decodes the DFID_NAME info record: fsid, file handle, name.
func (f *fanotify) eventPath(info []byte) (string, bool) {
	for len(info) >= 4 {
		typ, l := info[0], int(binary.NativeEndian.Uint16(info[2:]))
		if l < 4 || l > len(info) {
			return "", false
		}
		rec := info[:l]
		info = info[l:]
		if typ != unix.FAN_EVENT_INFO_TYPE_DFID_NAME && typ != unix.FAN_EVENT_INFO_TYPE_DFID {
			continue
		}
		if len(rec) < 4+8+8 {
			return "", false
		}
		fsid := [2]int32{int32(binary.NativeEndian.Uint32(rec[4:])), int32(binary.NativeEndian.Uint32(rec[8:]))}
		hb := int(binary.NativeEndian.Uint32(rec[12:]))
		ht := int32(binary.NativeEndian.Uint32(rec[16:]))
		if 20+hb > len(rec) {
			return "", false
		}
		handle := rec[20 : 20+hb]
		name := ""
		if typ == unix.FAN_EVENT_INFO_TYPE_DFID_NAME {
			rest := rec[20+hb:]
			if i := indexByte(rest, 0); i >= 0 {
				rest = rest[:i]
			}
			name = string(rest)
		}
		dir, ok := f.dirPath(fsid, ht, handle)
		if !ok {
			return "", false
		}
		if name == "" || name == "." {
			return dir, true
		}
		if dir == "/" {
			return "/" + name, true
		}
		return dir + "/" + name, true
	}
	return "", false
}

func (f *fanotify) dirPath(fsid [2]int32, ht int32, handle []byte) (string, bool) {
	key := strconv.Itoa(int(fsid[0])) + ":" + strconv.Itoa(int(fsid[1])) + ":" + strconv.Itoa(int(ht)) + ":" + string(handle)
	if p, ok := f.dirs[key]; ok {
		return p, true
	}
	mfd, ok := f.mountFDs[fsid]
	if !ok {
		return "", false
	}
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(ht, handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", false
	}
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	unix.Close(fd)
	if err != nil || strings.HasSuffix(p, " (deleted)") {
		return "", false
	}
	if len(f.dirs) > 1<<16 {
		clear(f.dirs)
	}
	f.dirs[key] = p
	return p, true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

type cachedActor struct {
	a  Actor
	at time.Time
}

// actorTTL bounds how long a resolved pid is reused: a burst of events from
// one process costs one /proc lookup, and an exec a moment later is seen.
const actorTTL = 50 * time.Millisecond

func (f *fanotify) actor(pid int, now time.Time) Actor {
	if c, ok := f.actors[pid]; ok && now.Sub(c.at) < actorTTL {
		return c.a
	}
	a := resolveActor(f.cfg.ProcRoot, pid)
	if len(f.actors) > 4096 {
		clear(f.actors)
	}
	f.actors[pid] = cachedActor{a: a, at: now}
	return a
}

// touchesScope: p is covered by a rule or lies above one.
func (f *fanotify) touchesScope(p string) bool {
	if f.cfg.Policy.RuleFor(p) != nil {
		return true
	}
	for _, r := range f.cfg.Policy.Rules {
		if strings.HasPrefix(r.Path, p+"/") {
			return true
		}
	}
	return false
}
