package agent

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/agent/testmanager"
	"github.com/mamori-sec/mamori/api"
)

// TestEnrollRetriesUntilManagerIsUp starts enrolment against a port where
// nothing listens yet, then brings the manager up there.
func TestEnrollRetriesUntilManagerIsUp(t *testing.T) {
	m, err := testmanager.New()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.AddToken("tok", 1)
	// a free port, closed again: connection refused until the proxy listens
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	go func() {
		time.Sleep(1500 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		defer l.Close()
		up := m.Listener.Addr().String()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go proxy(c, up)
		}
	}()
	hi := api.HostInfo{Hostname: "h", MachineID: "m"}
	dir := t.TempDir()
	err = Enroll(context.Background(), EnrollOptions{ManagerURL: "https://" + addr, Token: "tok", CAPEM: m.CAPEM, DataDir: dir, Host: &hi, RetryFor: 20 * time.Second})
	if err != nil {
		t.Fatalf("Enroll with retries = %v", err)
	}
	if !Enrolled(dir) {
		t.Fatal("not enrolled")
	}
}

func TestEnrollDoesNotRetryRefusals(t *testing.T) {
	m, err := testmanager.New()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	hi := api.HostInfo{Hostname: "h", MachineID: "m"}
	start := time.Now()
	err = Enroll(context.Background(), EnrollOptions{ManagerURL: m.URL, Token: "bad", CAPEM: m.CAPEM, DataDir: t.TempDir(), Host: &hi, RetryFor: time.Minute})
	if err == nil || !client.Permanent(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("Enroll with a bad token = %v after %v, want a permanent error at once", err, time.Since(start))
	}
	other, _ := testmanager.New()
	defer other.Close()
	start = time.Now()
	err = Enroll(context.Background(), EnrollOptions{ManagerURL: m.URL, Token: "bad", CAPEM: other.CAPEM, DataDir: t.TempDir(), Host: &hi, RetryFor: time.Minute})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Enroll trusting the wrong CA = %v after %v, want an error at once", err, time.Since(start))
	}
}

func proxy(c net.Conn, to string) {
	defer c.Close()
	u, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); done <- struct{}{} }()
	go func() { io.Copy(c, u); done <- struct{}{} }()
	<-done
}
