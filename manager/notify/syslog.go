package notify

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mamori-sec/mamori/event"
)

// SyslogConfig is the settings of a syslog notifier.
type SyslogConfig struct {
	// Network is "udp" (RFC 5426), "tcp" (RFC 6587 octet counting) or
	// "tls" (RFC 5425).
	Network string `json:"network"`
	Address string `json:"address"` // host:port
	// Format of the MSG part: "json" (default), "cef" or "leef".
	Format string `json:"format,omitempty"`
	// Facility 1–23; 0 means local0 (16).
	Facility int         `json:"facility,omitempty"`
	AppName  string      `json:"app_name,omitempty"` // default "mamori"
	Timeout  Duration    `json:"timeout,omitempty"`  // per attempt, default 10s
	TLS      TLSSettings `json:"tls,omitempty"`
}

// MaxUDPMessage is the largest datagram sent; longer messages are cut,
// since a datagram cannot be split and a SIEM parses what arrives.
const MaxUDPMessage = 65000

// Syslog sends one RFC 5424 message per event of an alert. Stream
// connections are kept open between alerts and re-dialled after an error.
type Syslog struct {
	retryPolicy
	name    string
	cfg     SyslogConfig
	tls     *tls.Config
	version string

	mu   sync.Mutex
	conn net.Conn
}

var _ Notifier = (*Syslog)(nil)

// NewSyslog validates cfg and returns the sender; it connects on first use.
func NewSyslog(name string, cfg SyslogConfig, retry Backoff, opt Options) (*Syslog, error) {
	switch cfg.Network {
	case "udp", "tcp", "tls":
	default:
		return nil, fieldErr("settings.network", "unknown network %q (want udp, tcp or tls)", cfg.Network)
	}
	host, port, err := net.SplitHostPort(cfg.Address)
	if err != nil || host == "" {
		return nil, fieldErr("settings.address", "want host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fieldErr("settings.address", "bad port %q", port)
	}
	switch cfg.Format {
	case "", "json", "cef", "leef":
	default:
		return nil, fieldErr("settings.format", "unknown format %q (want json, cef or leef)", cfg.Format)
	}
	if cfg.Facility < 0 || cfg.Facility > 23 {
		return nil, fieldErr("settings.facility", "want 0 to 23")
	}
	if len(cfg.AppName) > 48 {
		return nil, fieldErr("settings.app_name", "longer than 48 characters (RFC 5424)")
	}
	for _, r := range cfg.AppName {
		if r <= 32 || r >= 127 {
			return nil, fieldErr("settings.app_name", "only printable ASCII without spaces (RFC 5424)")
		}
	}
	if cfg.Timeout < 0 {
		return nil, fieldErr("settings.timeout", "must not be negative")
	}
	s := &Syslog{retryPolicy: retryPolicy{retry}, name: name, cfg: cfg, version: opt.ProductVersion}
	if cfg.Network == "tls" {
		if s.tls, err = cfg.TLS.config("settings.tls.", host); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Syslog) Name() string { return s.name }

// Messages renders the RFC 5424 messages for an alert, one per event,
// without transport framing.
func (s *Syslog) Messages(a Alert) ([]string, error) {
	out := make([]string, 0, len(a.Events))
	for i := range a.Events {
		ev := a.Events[i]
		ev.Host = hostOf(&a, &ev)
		if a.Suppressed > 0 {
			// CEF and LEEF carry the event alone: say in its message
			// that it stands for the alerts a throttle held back.
			ev.Message = a.Summary + "; last: " + ev.Message
		}
		if ev.ComputerID == "" {
			ev.ComputerID = a.Computer.ID
		}
		var payload string
		switch s.cfg.Format {
		case "cef":
			payload = ev.CEF(s.version)
		case "leef":
			payload = leefDelimited(ev.LEEF(s.version))
		default:
			b, err := json.Marshal(syslogJSON{AlertID: a.ID, Tenant: a.Tenant, Rule: a.Rule, Computer: a.Computer, Count: a.Count, Suppressed: a.Suppressed, Event: &ev})
			if err != nil {
				return nil, fmt.Errorf("encoding event %s: %w", ev.ID, err)
			}
			payload = string(b)
		}
		out = append(out, ev.Syslog(s.cfg.Facility, s.cfg.AppName, payload))
	}
	return out, nil
}

// leefDelimited makes the LEEF 2.0 delimiter field explicit ("x09", tab):
// LEEF 2.0 has six header fields, the sixth naming the attribute
// delimiter, and a header with only five leaves parsers to guess whether
// the first attribute is the delimiter. Already-delimited input is kept.
func leefDelimited(s string) string {
	head, _, _ := strings.Cut(s, "\t")
	pipes, at := 0, -1
	for i := 0; i < len(head); i++ {
		switch head[i] {
		case '\\':
			i++
		case '|':
			pipes++
			if pipes == 5 {
				at = i + 1
			}
		}
	}
	if pipes != 5 || at < 0 {
		return s
	}
	return s[:at] + "x09|" + s[at:]
}

type syslogJSON struct {
	AlertID    string       `json:"alert_id"`
	Tenant     string       `json:"tenant"`
	Rule       RuleRef      `json:"rule"`
	Computer   ComputerRef  `json:"computer"`
	Count      int          `json:"count"`
	Suppressed int          `json:"suppressed,omitempty"`
	Event      *event.Event `json:"event"`
}

// Notify sends the alert's messages. Any transport error is retryable;
// the connection is dropped so the retry dials afresh.
func (s *Syslog) Notify(ctx context.Context, a Alert) error {
	msgs, err := s.Messages(a)
	if err != nil {
		return Permanent(fmt.Errorf("syslog %s: %w", s.name, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.cfg.Network != "udp" && peerClosed(s.conn) {
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		if s.conn, err = s.dial(ctx); err != nil {
			return fmt.Errorf("syslog %s: connecting to %s: %w", s.name, s.cfg.Address, err)
		}
	}
	deadline := time.Now().Add(s.cfg.Timeout.or(10 * time.Second))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetWriteDeadline(deadline)
	for _, m := range msgs {
		var frame []byte
		if s.cfg.Network == "udp" {
			if len(m) > MaxUDPMessage {
				m = m[:MaxUDPMessage]
			}
			frame = []byte(m)
		} else {
			// RFC 6587 octet counting: "MSG-LEN SP SYSLOG-MSG", so a
			// message may itself contain newlines.
			frame = []byte(strconv.Itoa(len(m)) + " " + m)
		}
		if _, err := s.conn.Write(frame); err != nil {
			s.conn.Close()
			s.conn = nil
			return fmt.Errorf("syslog %s: sending to %s: %w", s.name, s.cfg.Address, err)
		}
	}
	return nil
}

func (s *Syslog) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: s.cfg.Timeout.or(10 * time.Second)}
	switch s.cfg.Network {
	case "tls":
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		return td.DialContext(ctx, "tcp", s.cfg.Address)
	default:
		return d.DialContext(ctx, s.cfg.Network, s.cfg.Address)
	}
}

// Close drops the connection, if any.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.cfg.Network != "udp" && peerClosed(s.conn) {
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
