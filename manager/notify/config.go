package notify

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Notifier types a Config may name.
const (
	TypeWebhook = "webhook"
	TypeSyslog  = "syslog"
	TypeMail    = "email"
	// TypeSMTP is accepted as another name for TypeMail.
	TypeSMTP = "smtp"
)

// Config is a notifier as the manager stores it (JSON). Settings is
// decoded strictly into the type's own configuration.
type Config struct {
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Retry    *Backoff        `json:"retry,omitempty"`
	Settings json.RawMessage `json:"settings"`
}

// Options are what the manager knows and the configuration does not.
type Options struct {
	// ProductVersion goes into CEF/LEEF headers and the User-Agent.
	ProductVersion string
	// Hostname is the manager's name, for the SMTP greeting and Message-IDs.
	Hostname string
	// Throttle caps each notifier's notifications per alert rule (Service).
	Throttle ThrottleConfig
}

func (o Options) withDefaults() Options {
	o.Throttle = o.Throttle.withDefaults()
	if o.ProductVersion == "" {
		o.ProductVersion = "0"
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
		if o.Hostname == "" {
			o.Hostname = "localhost"
		}
	}
	return o
}

// DecodeConfig reads a notifier configuration strictly and validates it,
// settings included; errors are *FieldError naming the field
// ("settings.url") where there is one.
func DecodeConfig(data []byte) (Config, error) {
	var c Config
	if len(data) > 1<<20 {
		return c, errors.New("decoding notifier: larger than 1 MiB")
	}
	if err := decodeStrict(data, &c, ""); err != nil {
		return c, fmt.Errorf("decoding notifier: %w", err)
	}
	if _, err := c.build(Options{}); err != nil {
		return c, fmt.Errorf("decoding notifier %q: %w", c.Name, err)
	}
	return c, nil
}

// ValidateSettings checks one type's settings strictly, for a store that
// keeps name, type and settings apart; field names in errors are relative
// to the settings object ("url", "tls.ca_pem").
func ValidateSettings(typ string, settings json.RawMessage) error {
	_, err := Build("check", typ, settings, Options{})
	return err
}

// Build is New for a notifier stored as separate name, type and settings.
func Build(name, typ string, settings json.RawMessage, opt Options) (Notifier, error) {
	n, err := Config{Name: name, Type: typ, Settings: settings}.build(opt.withDefaults())
	var fe *FieldError
	if errors.As(err, &fe) {
		fe.Field = strings.TrimPrefix(fe.Field, "settings.")
	}
	if err != nil {
		return nil, fmt.Errorf("configuring %s notifier %q: %w", typ, name, err)
	}
	return n, nil
}

// New builds the notifier a Config describes.
func New(c Config, opt Options) (Notifier, error) {
	n, err := c.build(opt.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("configuring notifier %q: %w", c.Name, err)
	}
	return n, nil
}

func (c Config) build(opt Options) (Notifier, error) {
	if c.Name == "" {
		return nil, fieldErr("name", "missing")
	}
	if len(c.Name) > 128 || strings.ContainsAny(c.Name, "\r\n\t") {
		return nil, fieldErr("name", "longer than 128 bytes or has control characters")
	}
	retry := DefaultBackoff
	if c.Retry != nil {
		if err := c.Retry.validate("retry."); err != nil {
			return nil, err
		}
		retry = c.Retry.withDefaults()
	}
	if len(c.Settings) == 0 {
		return nil, fieldErr("settings", "missing")
	}
	switch c.Type {
	case TypeWebhook:
		var s WebhookConfig
		if err := decodeStrict(c.Settings, &s, "settings."); err != nil {
			return nil, err
		}
		return NewWebhook(c.Name, s, retry, opt)
	case TypeSyslog:
		var s SyslogConfig
		if err := decodeStrict(c.Settings, &s, "settings."); err != nil {
			return nil, err
		}
		return NewSyslog(c.Name, s, retry, opt)
	case TypeMail, TypeSMTP:
		var s MailConfig
		if err := decodeStrict(c.Settings, &s, "settings."); err != nil {
			return nil, err
		}
		return NewMail(c.Name, s, retry, opt)
	case "":
		return nil, fieldErr("type", "missing (want webhook, syslog or email)")
	}
	return nil, fieldErr("type", "unknown type %q (want webhook, syslog, email or smtp)", c.Type)
}

// TLSSettings are the TLS knobs the senders share.
type TLSSettings struct {
	// CAPEM trusts these certificates instead of the system pool.
	CAPEM string `json:"ca_pem,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `json:"server_name,omitempty"`
	// InsecureSkipVerify disables certificate checks; for lab use only.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// ClientCertPEM and ClientKeyPEM present a certificate to receivers
	// that require mutual TLS.
	ClientCertPEM string `json:"client_cert_pem,omitempty"`
	ClientKeyPEM  string `json:"client_key_pem,omitempty"`
}

func (t TLSSettings) config(prefix, defaultName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if c.ServerName == "" {
		c.ServerName = defaultName
	}
	if t.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
			return nil, fieldErr(prefix+"ca_pem", "no PEM certificate found")
		}
		c.RootCAs = pool
	}
	if t.ClientCertPEM != "" || t.ClientKeyPEM != "" {
		cert, err := tls.X509KeyPair([]byte(t.ClientCertPEM), []byte(t.ClientKeyPEM))
		if err != nil {
			return nil, fieldErr(prefix+"client_cert_pem", "loading the client certificate and key: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// retrier is implemented by the senders so the Dispatcher uses each
// notifier's own retry policy.
type retrier interface{ Retry() Backoff }

type retryPolicy struct{ backoff Backoff }

func (r retryPolicy) Retry() Backoff { return r.backoff }
