package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procSampler reads a process's CPU time and resident memory from /proc:
// CPU as the utime+stime delta between marks, RSS sampled each second
// (peak and mean per phase).
type procSampler struct {
	pid    int
	tree   bool // CPU of the process and its children (a database's backends)
	mu     sync.Mutex
	marks  []procMark
	cur    *procPhase
	byName map[string]*procPhase
	done   chan struct{}
}

type procMark struct {
	name string
	at   time.Time
	cpu  time.Duration
}

type procPhase struct {
	name           string
	rssMax, rssSum int64
	n              int64
}

type phaseUsage struct {
	name       string
	dur        time.Duration
	cpuPercent float64 // of one core
	rssMaxMB   float64
	rssMeanMB  float64
}

const clockTicks = 100 // USER_HZ on Linux

func newProcSampler(pid int) *procSampler {
	p := &procSampler{pid: pid, done: make(chan struct{}), byName: map[string]*procPhase{}}
	if pid > 0 {
		go p.loop()
	}
	return p
}

func (p *procSampler) loop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			rss, err := rssBytes(p.pid)
			if err != nil {
				continue
			}
			p.mu.Lock()
			if c := p.cur; c != nil {
				c.rssMax = max(c.rssMax, rss)
				c.rssSum += rss
				c.n++
			}
			p.mu.Unlock()
		}
	}
}

// newTreeSampler samples a server that forks a process per connection
// (PostgreSQL's postmaster): CPU counts the process and its children.
func newTreeSampler(pid int) *procSampler {
	p := newProcSampler(pid)
	p.tree = true
	return p
}

// mark ends the current phase and starts the named one.
func (p *procSampler) mark(name string) {
	if p.pid <= 0 {
		return
	}
	cpu, _ := cpuTime(p.pid)
	if p.tree {
		cpu, _ = treeCPU(p.pid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marks = append(p.marks, procMark{name: name, at: time.Now(), cpu: cpu})
	p.cur = &procPhase{name: name}
	p.byName[name] = p.cur
	if name == "end" {
		close(p.done)
	}
}

func (p *procSampler) usage() []phaseUsage {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []phaseUsage
	for i := 0; i+1 < len(p.marks); i++ {
		a, b := p.marks[i], p.marks[i+1]
		u := phaseUsage{name: a.name, dur: b.at.Sub(a.at)}
		if u.dur > 0 {
			u.cpuPercent = 100 * float64(b.cpu-a.cpu) / float64(u.dur)
		}
		if ph := p.byName[a.name]; ph != nil && ph.n > 0 {
			u.rssMaxMB = float64(ph.rssMax) / (1 << 20)
			u.rssMeanMB = float64(ph.rssSum) / float64(ph.n) / (1 << 20)
		}
		out = append(out, u)
	}
	return out
}

// treeCPU is the CPU time of pid, of its living children, and of the
// children it has reaped (cutime, cstime).
func treeCPU(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, _ := strconv.ParseInt(f[i], 10, 64)
		total += v
	}
	ents, _ := os.ReadDir("/proc")
	want := strconv.Itoa(pid)
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		cf, err := statFields(child)
		if err != nil || cf[1] != want { // field 1 after ')' is ppid
			continue
		}
		for _, i := range []int{11, 12} {
			v, _ := strconv.ParseInt(cf[i], 10, 64)
			total += v
		}
	}
	return time.Duration(total) * time.Second / clockTicks, nil
}

// statFields returns /proc/pid/stat's fields after the command name.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return nil, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces and parentheses: fields count
	// from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	// After ')' field 0 is state (stat field 3); utime and stime are
	// stat fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stt, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat times", pid)
	}
	return time.Duration(ut+stt) * time.Second / clockTicks, nil
}

func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
