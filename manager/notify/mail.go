package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// MailConfig is the settings of a mail notifier.
type MailConfig struct {
	Address string   `json:"address"` // SMTP server host:port (25 or 587)
	From    string   `json:"from"`
	To      []string `json:"to"`
	// Username and Password enable AUTH PLAIN, which net/smtp only does
	// over TLS (or to localhost).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// StartTLS: "auto" (default: when the server offers it), "require" or
	// "off".
	StartTLS string `json:"starttls,omitempty"`
	// ImplicitTLS speaks TLS from the first byte (SMTPS, port 465)
	// instead of upgrading with STARTTLS.
	ImplicitTLS   bool        `json:"implicit_tls,omitempty"`
	SubjectPrefix string      `json:"subject_prefix,omitempty"` // default "[mamori]"
	Timeout       Duration    `json:"timeout,omitempty"`        // whole session, default 30s
	TLS           TLSSettings `json:"tls,omitempty"`
}

// Mail sends one plain-text message per alert.
type Mail struct {
	retryPolicy
	name     string
	cfg      MailConfig
	host     string
	from     *mail.Address
	to       []*mail.Address
	tls      *tls.Config
	hostname string
}

var _ Notifier = (*Mail)(nil)

// NewMail validates cfg and returns the sender.
func NewMail(name string, cfg MailConfig, retry Backoff, opt Options) (*Mail, error) {
	host, port, err := net.SplitHostPort(cfg.Address)
	if err != nil || host == "" {
		return nil, fieldErr("settings.address", "want host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fieldErr("settings.address", "bad port %q", port)
	}
	m := &Mail{retryPolicy: retryPolicy{retry}, name: name, cfg: cfg, host: host, hostname: opt.Hostname}
	if m.from, err = mail.ParseAddress(cfg.From); err != nil {
		return nil, fieldErr("settings.from", "%v", err)
	}
	if len(cfg.To) == 0 {
		return nil, fieldErr("settings.to", "missing")
	}
	for i, t := range cfg.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("settings.to[%d]", i), "%v", err)
		}
		m.to = append(m.to, a)
	}
	switch cfg.StartTLS {
	case "", "auto", "require", "off":
	default:
		return nil, fieldErr("settings.starttls", "unknown mode %q (want auto, require or off)", cfg.StartTLS)
	}
	if cfg.ImplicitTLS && cfg.StartTLS != "" && cfg.StartTLS != "auto" {
		return nil, fieldErr("settings.starttls", "implicit_tls already encrypts the session; leave starttls unset")
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, fieldErr("settings.password", "username and password go together")
	}
	if strings.ContainsAny(cfg.SubjectPrefix, "\r\n") {
		return nil, fieldErr("settings.subject_prefix", "must be one line")
	}
	if cfg.Timeout < 0 {
		return nil, fieldErr("settings.timeout", "must not be negative")
	}
	if m.tls, err = cfg.TLS.config("settings.tls.", host); err != nil {
		return nil, err
	}
	if m.hostname == "" {
		m.hostname = "localhost"
	}
	return m, nil
}

func (m *Mail) Name() string { return m.name }

// Notify runs one SMTP session. 5xx replies are permanent, 4xx and
// network errors retryable.
func (m *Mail) Notify(ctx context.Context, a Alert) error {
	msg := m.Message(a, time.Now())
	if err := m.send(ctx, msg); err != nil {
		err = fmt.Errorf("mail %s: %w", m.name, err)
		var te *textproto.Error
		if errors.As(err, &te) && te.Code >= 500 {
			return Permanent(err)
		}
		return err
	}
	return nil
}

func (m *Mail) send(ctx context.Context, msg []byte) error {
	timeout := m.cfg.Timeout.or(30 * time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if m.cfg.ImplicitTLS {
		conn, err = (&tls.Dialer{Config: m.tls}).DialContext(ctx, "tcp", m.cfg.Address)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", m.cfg.Address)
	}
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", m.cfg.Address, err)
	}
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	// net/smtp has no context; closing the connection unblocks it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting %s: %w", m.cfg.Address, err)
	}
	defer c.Close()
	if err := c.Hello(m.hostname); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	mode := m.cfg.StartTLS
	if m.cfg.ImplicitTLS {
		mode = "off" // already encrypted
	}
	if offered, _ := c.Extension("STARTTLS"); offered && mode != "off" {
		if err := c.StartTLS(m.tls); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	} else if mode == "require" {
		return Permanent(fmt.Errorf("server %s does not offer STARTTLS and settings.starttls is require", m.cfg.Address))
	}
	if m.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, t := range m.to {
		if err := c.Rcpt(t.Address); err != nil {
			return fmt.Errorf("RCPT TO <%s>: %w", t.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("writing message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("ending DATA: %w", err)
	}
	if err := c.Quit(); err != nil {
		// The message was accepted at the end of DATA; a failed QUIT
		// must not make the Dispatcher send it twice.
		return nil
	}
	return nil
}

// Message renders the RFC 5322 message: headers, then a quoted-printable
// UTF-8 plain-text body.
func (m *Mail) Message(a Alert, now time.Time) []byte {
	prefix := m.cfg.SubjectPrefix
	if prefix == "" {
		prefix = "[mamori]"
	}
	sev := ""
	if len(a.Events) > 0 {
		sev = a.Events[0].Severity.String() + " "
	}
	ruleName := a.Rule.Name
	if ruleName == "" {
		ruleName = a.Rule.ID
	}
	host := a.Computer.Hostname
	if host == "" {
		host = a.Computer.ID
	}
	subject := fmt.Sprintf("%s %s%s on %s", prefix, sev, ruleName, host)
	switch {
	case a.Suppressed > 0:
		subject += fmt.Sprintf(" (%d more suppressed)", a.Suppressed)
	case a.Count > 1:
		subject += fmt.Sprintf(" (%d times)", a.Count)
	}
	subject = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, subject)

	var b strings.Builder
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", m.from.String())
	tos := make([]string, len(m.to))
	for i, t := range m.to {
		tos[i] = t.String()
	}
	hdr("To", strings.Join(tos, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", now.Format(time.RFC1123Z))
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	hdr("Message-ID", "<"+hex.EncodeToString(rnd[:])+"."+sanitizeMsgID(a.ID)+"@"+m.hostname+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("X-Mamori-Alert-Id", sanitizeMsgID(a.ID))
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&crlfWriter{&b})
	_, _ = qp.Write([]byte(TextBody(a)))
	_ = qp.Close()
	return []byte(b.String())
}

func sanitizeMsgID(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= 32 || r >= 127 || strings.ContainsRune("<>@\"\\()[],;:", r) {
			return -1
		}
		return r
	}, s)
}

// crlfWriter turns the body's LF line ends into the CRLF mail needs.
type crlfWriter struct{ b *strings.Builder }

func (w *crlfWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			w.b.WriteString("\r\n")
			continue
		}
		if c != '\r' {
			w.b.WriteByte(c)
		}
	}
	return len(p), nil
}

// TextBody is the human-readable alert, shared by mail and any other
// plain-text channel.
func TextBody(a Alert) string {
	var b strings.Builder
	name := a.Rule.Name
	if name == "" {
		name = a.Rule.ID
	}
	fmt.Fprintf(&b, "Alert: %s (rule %s)\n", name, a.Rule.ID)
	fmt.Fprintf(&b, "Time: %s\n", a.Time.UTC().Format(time.RFC3339))
	if a.Tenant != "" {
		fmt.Fprintf(&b, "Tenant: %s\n", a.Tenant)
	}
	fmt.Fprintf(&b, "Computer: %s (%s)", a.Computer.Hostname, a.Computer.ID)
	if a.Computer.Group != "" {
		fmt.Fprintf(&b, ", group %s", a.Computer.Group)
	}
	if len(a.Computer.Tags) > 0 {
		fmt.Fprintf(&b, ", tags %s", strings.Join(a.Computer.Tags, ", "))
	}
	b.WriteString("\n")
	switch {
	case a.Suppressed > 0:
		fmt.Fprintf(&b, "Suppressed: %s; the last of them follows\n", a.Summary)
	case a.Count > 1:
		fmt.Fprintf(&b, "Occurrences: %d (repeats were folded into this alert)\n", a.Count)
	}
	if a.URL != "" {
		fmt.Fprintf(&b, "Console: %s\n", a.URL)
	}
	for i := range a.Events {
		ev := &a.Events[i]
		fmt.Fprintf(&b, "\nEvent %s\n  %s %s %s: %s\n", ev.ID, ev.Time.UTC().Format(time.RFC3339), ev.Severity, ev.Kind, ev.Message)
		if ev.Module != "" {
			fmt.Fprintf(&b, "  module: %s\n", ev.Module)
		}
		if ev.Action != "" {
			fmt.Fprintf(&b, "  action: %s\n", ev.Action)
		}
		if ev.Rule != nil {
			fmt.Fprintf(&b, "  rule: %s %s\n", ev.Rule.ID, ev.Rule.Name)
		}
		if ev.File != nil {
			fmt.Fprintf(&b, "  file: %s\n", ev.File.Path)
			if h := ev.File.Hashes["sha256"]; h != "" {
				fmt.Fprintf(&b, "  sha256: %s\n", h)
			}
		}
		if ev.Process != nil && (ev.Process.Exe != "" || ev.Process.Cmdline != "") {
			fmt.Fprintf(&b, "  process: %d %s %s\n", ev.Process.PID, ev.Process.Exe, ev.Process.Cmdline)
		}
		if ev.Src != nil && ev.Src.IP != "" {
			fmt.Fprintf(&b, "  source: %s\n", net.JoinHostPort(ev.Src.IP, strconv.Itoa(ev.Src.Port)))
		}
		if ev.Dst != nil && ev.Dst.IP != "" {
			fmt.Fprintf(&b, "  destination: %s\n", net.JoinHostPort(ev.Dst.IP, strconv.Itoa(ev.Dst.Port)))
		}
		if ev.User != nil && ev.User.Name != "" {
			fmt.Fprintf(&b, "  user: %s\n", ev.User.Name)
		}
		for _, e := range ev.Evidence {
			fmt.Fprintf(&b, "  evidence: %s\n", e)
		}
	}
	return b.String()
}
