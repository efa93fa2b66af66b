//go:build linux

package watch

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/integrity/walk"
)

const inMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// inotify watches every directory the policy descends into. It cannot say
// which process acted, and the number of watches is capped by
// fs.inotify.max_user_watches: reaching the cap is reported in health.
type inotify struct {
	cfg Config
	fd  int

	mu        sync.Mutex
	wds       map[int]string // watch → logical directory
	unwatched int
	overflow  bool
}

func newInotify(cfg Config) (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init: %w", err)
	}
	in := &inotify{cfg: cfg, fd: fd, wds: map[int]string{}}
	for _, r := range cfg.Policy.Rules {
		st, err := os.Lstat(cfg.Root + r.Path)
		if err != nil || !st.IsDir() {
			// A single file, or a path not there yet: watch the parent.
			in.add(parentOf(r.Path))
			continue
		}
		in.addTree(r.Path)
	}
	return in, nil
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// addTree watches dir and the directories below it the policy descends.
func (in *inotify) addTree(dir string) {
	if !in.add(dir) {
		return
	}
	des, err := os.ReadDir(in.cfg.Root + dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		child := strings.TrimSuffix(dir, "/") + "/" + de.Name()
		r := in.cfg.Policy.RuleFor(child)
		if r == nil {
			continue
		}
		if walk.Covered(in.cfg.Policy, child) == nil {
			// Not recorded itself; still descend if the rule does.
			if _, desc := r.Match(child, depthBelow(r.Path, child), true); !desc {
				continue
			}
		}
		in.addTree(child)
	}
}

func depthBelow(root, p string) int {
	if p == root {
		return 0
	}
	return strings.Count(strings.TrimPrefix(p, root), "/")
}

func (in *inotify) add(dir string) bool {
	wd, err := unix.InotifyAddWatch(in.fd, in.cfg.Root+dir, inMask|unix.IN_ONLYDIR)
	in.mu.Lock()
	defer in.mu.Unlock()
	if err == unix.ENOSPC {
		in.unwatched++
		return false
	}
	if err != nil {
		return false
	}
	in.wds[wd] = dir
	return true
}

func (in *inotify) health() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var parts []string
	if in.unwatched > 0 {
		limit, _ := os.ReadFile("/proc/sys/fs/inotify/max_user_watches")
		msg := fmt.Sprintf("inotify watch limit reached (fs.inotify.max_user_watches=%s", strings.TrimSpace(string(limit)))
		// The effective limit is per user namespace.
		if ns, err := os.ReadFile("/proc/sys/user/max_inotify_watches"); err == nil && strings.TrimSpace(string(ns)) != strings.TrimSpace(string(limit)) {
			msg += ", user.max_inotify_watches=" + strings.TrimSpace(string(ns))
		}
		parts = append(parts, fmt.Sprintf("%s): %d directories not watched; raise the limit or run as root for fanotify", msg, in.unwatched))
	}
	if in.overflow {
		parts = append(parts, "inotify event queue overflowed: events were lost; the next full check covers them")
	}
	return strings.Join(parts, "; ")
}

func (in *inotify) close() {
	if in.fd >= 0 {
		unix.Close(in.fd)
		in.fd = -1
	}
}

func (in *inotify) run(ctx context.Context, out chan<- rawEvent) error {
	buf := make([]byte, 256<<10)
	pfd := []unix.PollFd{{Fd: int32(in.fd), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		n, err := unix.Poll(pfd, 100)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("polling inotify: %w", err)
		}
		m, err := unix.Read(in.fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading inotify: %w", err)
		}
		now := time.Now()
		for b := buf[:m]; len(b) >= unix.SizeofInotifyEvent; {
			wd := int(int32(binary.NativeEndian.Uint32(b)))
			mask := binary.NativeEndian.Uint32(b[4:])
			nl := int(binary.NativeEndian.Uint32(b[12:]))
			if unix.SizeofInotifyEvent+nl > len(b) {
				break
			}
			name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+nl]), "\x00")
			b = b[unix.SizeofInotifyEvent+nl:]
			if mask&unix.IN_Q_OVERFLOW != 0 {
				in.mu.Lock()
				in.overflow = true
				in.mu.Unlock()
				continue
			}
			in.mu.Lock()
			dir, ok := in.wds[wd]
			if mask&unix.IN_IGNORED != 0 {
				delete(in.wds, wd)
			}
			in.mu.Unlock()
			if !ok {
				continue
			}
			p := dir
			if name != "" {
				p = strings.TrimSuffix(dir, "/") + "/" + name
			}
			if mask&unix.IN_ISDIR != 0 && mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 && in.cfg.Policy.RuleFor(p) != nil {
				in.addTree(p)
				// Files created before the watch was placed: look at them now.
				if des, err := os.ReadDir(in.cfg.Root + p); err == nil {
					for _, de := range des {
						send(out, rawEvent{path: p + "/" + de.Name(), t: now})
					}
				}
			}
			if in.cfg.Policy.RuleFor(p) == nil {
				continue
			}
			send(out, rawEvent{path: p, t: now, final: mask&inFinal != 0 && mask&unix.IN_MODIFY == 0})
		}
	}
	return nil
}

const inFinal = unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

func send(out chan<- rawEvent, ev rawEvent) {
	select {
	case out <- ev:
	default:
	}
}
