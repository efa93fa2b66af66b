package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/mamori-sec/mamori/agent/client"
	"github.com/mamori-sec/mamori/agent/identity"
	"github.com/mamori-sec/mamori/agent/selfprotect"
	"github.com/mamori-sec/mamori/api"
)

// EnrollOptions are the inputs of Enroll. Give CAPEM (the manager's CA
// certificate, as `mamori up` has it) or CAPin ("sha256:<hex>" of the CA's
// public key): the token is never sent to an unauthenticated server.
type EnrollOptions struct {
	ManagerURL string
	Token      string
	CAPEM      []byte
	CAPin      string
	DataDir    string // default DefaultDataDir
	Version    string // agent version to report
	Root       string // host root for machine-id etc.; default "/"
	// KeepToken keeps the token (0600) so the agent can re-enrol by itself
	// when the manager flags its identity as a clone. Default true via the
	// CLI; off here unless set.
	KeepToken bool
	// Host overrides host detection (tests).
	Host *api.HostInfo
	// RetryFor keeps retrying transient failures (manager not up yet,
	// network not ready at first boot) with back-off for this long; refusals
	// (bad token, bad CSR) and TLS trust failures end at once. 0 = one try.
	RetryFor time.Duration
}

// Enroll enrols this host with the manager and stores the identity in the
// data directory, ready for New. Enrolling again replaces the identity (a
// new computer on the manager).
func Enroll(ctx context.Context, o EnrollOptions) error {
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("enrolling: %w", err)
	}
	host := identity.HostAt(o.Root, o.Version)
	if o.Host != nil {
		host = *o.Host
	}
	deadline := time.Now().Add(o.RetryFor)
	bo := client.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	for {
		_, err := client.Enroll(ctx, client.EnrollOptions{
			ManagerURL: o.ManagerURL, Token: o.Token, CAPEM: o.CAPEM, CAPin: o.CAPin,
			DataDir: o.DataDir, Host: host, KeepToken: o.KeepToken,
		})
		if err == nil {
			break
		}
		d := bo.Next()
		if !transient(err) || time.Now().Add(d).After(deadline) {
			return err
		}
		if sleep(ctx, d) != nil {
			return err
		}
	}
	if _, err := selfprotect.Harden(o.DataDir); err != nil {
		return fmt.Errorf("enrolling: %w", err)
	}
	return nil
}

// Enrolled reports whether dataDir holds an identity.
func Enrolled(dataDir string) bool {
	_, err := client.LoadIdentity(dataDir)
	return err == nil
}

// transient reports whether an enrolment error may go away by itself: the
// manager unreachable or answering 5xx/429. A refusal or a certificate that
// does not verify will not.
func transient(err error) bool {
	var se *client.StatusError
	if errors.As(err, &se) {
		return !client.Permanent(err)
	}
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	if errors.As(err, &ue) || errors.As(err, &he) || errors.As(err, &ce) {
		return false
	}
	// Dial and connection errors are *net.OpError; a handshake refused by
	// our own verification (pin mismatch) is not, and must not be retried.
	var oe *net.OpError
	var ne net.Error
	return errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || (errors.As(err, &ne) && ne.Timeout())
}
