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
	unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF | unix.FAN_ONDIR | unix.FAN_OPEN_EXEC

// fanotify watches whole filesystems (FAN_MARK_FILESYSTEM) and reports a
// directory handle plus a name per event (FAN_REPORT_DFID_NAME): no
// per-directory marks, creations and deletions included, and the pid of
// the process that acted. Handles are resolved to paths with
// open_by_handle_at against a descriptor on the same filesystem.
type fanotify struct {
	cfg    Config
	fd     int
	pidfds bool // events carry a pidfd (FAN_REPORT_PIDFD)
	// pidfs: pidfds live on pidfs (Linux 6.9), where a pidfd's inode
	// number names one process for the life of the system, so a cached
	// actor is matched to an event with one fstat.
	pidfs    bool
	mountFDs map[[2]int32]int
	dirs     map[string]string // handle key → directory path
	actors   map[int]cachedActor
}

func newFanotify(cfg Config) (*fanotify, error) {
	// FAN_REPORT_PIDFD (Linux 5.15) hands over a pidfd of the process
	// behind each event, which tells "exited" and "pid reused" apart from
	// a live process; older kernels get by with start times.
	const flags = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_REPORT_DFID_NAME
	pidfds := true
	fd, err := unix.FanotifyInit(flags|unix.FAN_REPORT_PIDFD, unix.O_RDONLY|unix.O_LARGEFILE)
	if err == unix.EINVAL {
		pidfds = false
		fd, err = unix.FanotifyInit(flags, unix.O_RDONLY|unix.O_LARGEFILE)
	}
	if err != nil {
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	f := &fanotify{cfg: cfg, fd: fd, pidfds: pidfds, pidfs: pidfds && onPidfs(), mountFDs: map[[2]int32]int{}, dirs: map[string]string{}, actors: map[int]cachedActor{}}
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
	// Execs are watched where programs usually live too, so a process
	// that changes a file and then executes another program is not
	// reported under the new program (see fanotify.run).
	for _, p := range []string{"/", "/usr", "/usr/local", "/opt"} {
		unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, p)
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

// run reads events, resolving the process behind each at once (before
// coalescing), and hands them on one batch late: an exec by that process
// queued after the event shows up in the same or the next read, and then
// the program resolved may be the new one, so it is not named. The next
// read is made right after resolving, so an exec that took effect before
// the lookup is always seen; one after it cannot have misled the lookup.
func (f *fanotify) run(ctx context.Context, out chan<- rawEvent) error {
	buf := make([]byte, 256<<10)
	pfd := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}}
	var held []rawEvent
	for ctx.Err() == nil {
		if len(held) == 0 {
			n, err := unix.Poll(pfd, 100)
			if err == unix.EINTR || n == 0 {
				continue
			}
			if err != nil {
				return fmt.Errorf("polling fanotify: %w", err)
			}
		}
		m, err := unix.Read(f.fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			// Nothing queued since the held events were resolved: no
			// exec can have changed what was read.
			sendAll(held, out)
			held = nil
			continue
		}
		if err != nil {
			return fmt.Errorf("reading fanotify: %w", err)
		}
		evs, execs := f.parse(buf[:m], time.Now())
		for i := range held {
			switch {
			case execs[anyPID]:
				held[i].actor.forget(UnknownOverflow)
			case execs[held[i].actor.PID]:
				held[i].actor.forget(UnknownExecuted)
			}
		}
		sendAll(held, out)
		held = evs
	}
	return nil
}

// anyPID in the execs of a batch: the queue overflowed.
const anyPID = -1

func sendAll(evs []rawEvent, out chan<- rawEvent) {
	for _, ev := range evs {
		select {
		case out <- ev:
		default:
			// The consumer is far behind; a burst this large is
			// caught by the next full check.
		}
	}
}

// fanFinal events end a change. The kernel merges a queued FAN_MODIFY into
// the FAN_CLOSE_WRITE that follows it, so a close counts even with MODIFY
// set; a file written again at once fails verification as unstable and is
// looked at once more.
const fanFinal = unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF

const metaSize = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

// parse decodes a batch of events, resolving the actor of each path event
// now. execs holds the pids that started an exec in the batch; an event
// of such a pid earlier in the batch has its actor forgotten here.
func (f *fanotify) parse(b []byte, now time.Time) (evs []rawEvent, execs map[int]bool) {
	execs = map[int]bool{}
	for len(b) >= metaSize {
		md := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&b[0]))
		evLen := int(md.Event_len)
		if evLen < metaSize || evLen > len(b) {
			return evs, execs
		}
		ev := b[:evLen]
		b = b[evLen:]
		if md.Fd >= 0 {
			unix.Close(int(md.Fd))
		}
		info := ev[md.Metadata_len:]
		pidfd := int32(unix.FAN_NOPIDFD)
		if f.pidfds {
			pidfd = findPidfd(info)
		}
		pid := int(md.Pid)
		if md.Mask&unix.FAN_OPEN_EXEC != 0 {
			execs[pid] = true
			delete(f.actors, pid)
			for i := range evs {
				if evs[i].actor.PID == pid {
					evs[i].actor.forget(UnknownExecuted)
				}
			}
		}
		if md.Mask&unix.FAN_Q_OVERFLOW != 0 {
			// Lost events may include an exec by any process seen so
			// far: none of them can be named for sure.
			execs[anyPID] = true
			for i := range evs {
				evs[i].actor.forget(UnknownOverflow)
			}
		}
		if md.Mask&(fanMask&^unix.FAN_OPEN_EXEC) == 0 || md.Mask&unix.FAN_Q_OVERFLOW != 0 {
			closePidfd(pidfd)
			continue
		}
		path, ok := f.eventPath(info)
		if !ok {
			closePidfd(pidfd)
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
			closePidfd(pidfd)
			continue
		}
		a := f.actor(pid, pidfd, now)
		closePidfd(pidfd)
		evs = append(evs, rawEvent{path: logical, actor: &a, t: now, final: md.Mask&fanFinal != 0})
	}
	return evs, execs
}

// findPidfd returns the pidfd info record's descriptor, or FAN_NOPIDFD /
// FAN_EPIDFD as the kernel put them.
func findPidfd(info []byte) int32 {
	for len(info) >= 4 {
		typ, l := info[0], int(binary.NativeEndian.Uint16(info[2:]))
		if l < 4 || l > len(info) {
			break
		}
		if typ == unix.FAN_EVENT_INFO_TYPE_PIDFD && l >= 8 {
			return int32(binary.NativeEndian.Uint32(info[4:]))
		}
		info = info[l:]
	}
	return unix.FAN_EPIDFD
}

func closePidfd(fd int32) {
	if fd >= 0 {
		unix.Close(int(fd))
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
	a   Actor
	ino uint64 // pidfs inode of the process, 0 if unknown
	at  time.Time
}

// A resolved pid is reused for a burst of events from one process: one
// /proc lookup per process instead of one per event. An exec by the pid
// drops its entry (parse). When pidfs names the process (same inode) the
// entry holds for actorTTL; otherwise only for actorTTLStart and only if
// the start time in /proc/PID/stat is unchanged.
const (
	actorTTL      = time.Second
	actorTTLStart = 50 * time.Millisecond
)

// pidfsMagic is PID_FS_MAGIC, the f_type of pidfs.
const pidfsMagic = 0x50494446

func onPidfs() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	return unix.Fstatfs(fd, &sfs) == nil && sfs.Type == pidfsMagic
}

func (f *fanotify) actor(pid int, pidfd int32, now time.Time) Actor {
	var alive func() bool
	var ino uint64
	switch {
	case pidfd == unix.FAN_NOPIDFD && f.pidfds:
		// The kernel could not make a pidfd because the process had
		// already exited: whatever has its pid now is someone else.
		return Actor{PID: pid, UID: -1, Unknown: UnknownExited}
	case pidfd >= 0:
		alive = func() bool { return unix.PidfdSendSignal(int(pidfd), 0, nil, 0) == nil }
		var st unix.Stat_t
		if f.pidfs && unix.Fstat(int(pidfd), &st) == nil {
			ino = st.Ino
		}
	}
	if c, ok := f.actors[pid]; ok {
		switch {
		case ino != 0 && c.ino == ino && now.Sub(c.at) < actorTTL:
			return c.a
		case ino == 0 && now.Sub(c.at) < actorTTLStart:
			if st, err := procStart(f.cfg.ProcRoot, pid); err == nil && st == c.a.start && (alive == nil || alive()) {
				return c.a
			}
		}
		delete(f.actors, pid)
	}
	a := resolveActor(f.cfg.ProcRoot, pid, alive)
	if a.Unknown != "" {
		return a
	}
	if len(f.actors) > 4096 {
		clear(f.actors)
	}
	f.actors[pid] = cachedActor{a: a, ino: ino, at: now}
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
