package agent

import (
	"context"
	"fmt"
	"os"

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
	host := identity.Host(o.Root, o.Version)
	if o.Host != nil {
		host = *o.Host
	}
	_, err := client.Enroll(ctx, client.EnrollOptions{
		ManagerURL: o.ManagerURL, Token: o.Token, CAPEM: o.CAPEM, CAPin: o.CAPin,
		DataDir: o.DataDir, Host: host, KeepToken: o.KeepToken,
	})
	if err != nil {
		return err
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
