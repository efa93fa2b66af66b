package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// mailbox is a real SMTP server (emersion/go-smtp) on loopback that keeps
// what it is sent.
type mailbox struct {
	mu       sync.Mutex
	msgs     []delivered
	rejectTo map[string]*smtp.SMTPError
	user     string
	pass     string
}

type delivered struct {
	from  string
	to    []string
	data  []byte
	tls   bool
	authd bool
}

type mboxSession struct {
	box   *mailbox
	conn  *smtp.Conn
	cur   delivered
	authd bool
}

func (b *mailbox) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &mboxSession{box: b, conn: c}, nil
}

func (s *mboxSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mboxSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.box.user || pass != s.box.pass {
			return smtp.ErrAuthFailed
		}
		s.authd = true
		return nil
	}), nil
}

func (s *mboxSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.box.user != "" && !s.authd {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}

func (s *mboxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := s.box.rejectTo[to]; e != nil {
		return e
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mboxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.cur.authd = s.authd
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	return nil
}

func (s *mboxSession) Reset()        { s.cur = delivered{} }
func (s *mboxSession) Logout() error { return nil }

func (b *mailbox) got() []delivered {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivered(nil), b.msgs...)
}

func startMailbox(t *testing.T, box *mailbox, tlsConf *tls.Config) string {
	t.Helper()
	srv := smtp.NewServer(box)
	srv.Domain = "mx.test"
	srv.TLSConfig = tlsConf // non-nil: STARTTLS is offered
	srv.ReadTimeout = 5 * time.Second
	srv.WriteTimeout = 5 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func mailNotifier(t *testing.T, settings map[string]any) Notifier {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"name": "ops-mail", "type": "email", "settings": settings})
	c, err := DecodeConfig(raw)
	if err != nil {
		t.Fatalf("DecodeConfig(%s): %v", raw, err)
	}
	n, err := New(c, Options{Hostname: "manager.test"})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMailPlain(t *testing.T) {
	box := &mailbox{}
	addr := startMailbox(t, box, nil)
	n := mailNotifier(t, map[string]any{"address": addr, "from": "mamori <mamori@example.test>", "to": []string{"soc@example.test", "Ops <ops@example.test>"}})
	if err := n.Notify(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	msgs := box.got()
	if len(msgs) != 1 {
		t.Fatalf("mailbox got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.from != "mamori@example.test" || strings.Join(m.to, ",") != "soc@example.test,ops@example.test" || m.tls {
		t.Errorf("envelope from %q to %q tls %v", m.from, m.to, m.tls)
	}
	checkMessage(t, m.data)
}

func checkMessage(t *testing.T, data []byte) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("reading message: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[mamori] high SSH brute force on web-1 (3 times)"; subject != want {
		t.Errorf("Subject = %q, want %q", subject, want)
	}
	if msg.Header.Get("Content-Transfer-Encoding") != "quoted-printable" || !strings.HasPrefix(msg.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("headers %v", msg.Header)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date header: %v", err)
	}
	if id := msg.Header.Get("Message-Id"); !strings.HasSuffix(id, "@manager.test>") {
		t.Errorf("Message-ID = %q", id)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Alert: SSH brute force (rule ssh-brute)",
		"Computer: web-1 (c-42), group web, tags prod",
		"Occurrences: 3",
		"SSH brute force from 10.3.98.76 — 5 failures",
		"source: 10.3.98.76:4415",
		"file: /tmp/eicar=1.com",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	for _, line := range strings.Split(string(data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line longer than RFC 5322 allows: %d", len(line))
		}
	}
}

func TestMailStartTLSAndAuth(t *testing.T) {
	serverTLS, caPEM := testCert(t)
	box := &mailbox{user: "mamori", pass: "pw"}
	addr := startMailbox(t, box, serverTLS)
	n := mailNotifier(t, map[string]any{
		"address": addr, "from": "mamori@example.test", "to": []string{"soc@example.test"},
		"username": "mamori", "password": "pw", "starttls": "require", "tls": map[string]any{"ca_pem": caPEM},
	})
	if err := n.Notify(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	msgs := box.got()
	if len(msgs) != 1 || !msgs[0].tls || !msgs[0].authd {
		t.Fatalf("mailbox got %+v, want one message over TLS after AUTH", msgs)
	}
	checkMessage(t, msgs[0].data)

	bad := mailNotifier(t, map[string]any{
		"address": addr, "from": "mamori@example.test", "to": []string{"soc@example.test"},
		"username": "mamori", "password": "wrong", "tls": map[string]any{"ca_pem": caPEM},
	})
	if err := bad.Notify(context.Background(), testAlert()); !IsPermanent(err) {
		t.Errorf("Notify with a wrong password = %v, want a permanent error", err)
	}
}

func TestMailRequireTLSWithoutOffer(t *testing.T) {
	addr := startMailbox(t, &mailbox{}, nil)
	n := mailNotifier(t, map[string]any{"address": addr, "from": "m@example.test", "to": []string{"s@example.test"}, "starttls": "require"})
	if err := n.Notify(context.Background(), testAlert()); !IsPermanent(err) || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("Notify = %v, want a permanent STARTTLS error", err)
	}
}

func TestMailReplyCodes(t *testing.T) {
	box := &mailbox{rejectTo: map[string]*smtp.SMTPError{
		"gone@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
		"busy@example.test": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"},
	}}
	addr := startMailbox(t, box, nil)
	for _, tc := range []struct {
		to        string
		permanent bool
	}{{"gone@example.test", true}, {"busy@example.test", false}} {
		n := mailNotifier(t, map[string]any{"address": addr, "from": "m@example.test", "to": []string{tc.to}})
		err := n.Notify(context.Background(), testAlert())
		if err == nil || IsPermanent(err) != tc.permanent {
			t.Errorf("Notify to %s = %v, want permanent=%v", tc.to, err, tc.permanent)
		}
	}
	if len(box.got()) != 0 {
		t.Errorf("mailbox accepted a message for a refused recipient")
	}
}

func TestMailTimeoutHonoursContext(t *testing.T) {
	// A server that accepts and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	n := mailNotifier(t, map[string]any{"address": l.Addr().String(), "from": "m@example.test", "to": []string{"s@example.test"}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = n.Notify(ctx, testAlert())
	if err == nil || IsPermanent(err) || time.Since(start) > 3*time.Second {
		t.Errorf("Notify against a silent server = %v after %s, want a retryable error soon", err, time.Since(start))
	}
	var ne net.Error
	_ = errors.As(err, &ne)
}

func TestMailImplicitTLS(t *testing.T) {
	serverTLS, caPEM := testCert(t)
	box := &mailbox{user: "mamori", pass: "pw"}
	srv := smtp.NewServer(box)
	srv.Domain = "mx.test"
	l, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	n := mailNotifier(t, map[string]any{
		"address": l.Addr().String(), "from": "mamori@example.test", "to": []string{"soc@example.test"},
		"username": "mamori", "password": "pw", "implicit_tls": true, "tls": map[string]any{"ca_pem": caPEM},
	})
	if err := n.Notify(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	if msgs := box.got(); len(msgs) != 1 || !msgs[0].tls || !msgs[0].authd {
		t.Fatalf("mailbox got %+v, want one message over implicit TLS after AUTH", msgs)
	}
}
