package manager

import (
	"errors"
	"net/http"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager/ca"
	"github.com/mamori-sec/mamori/manager/store"
)

// authAgent maps the verified client certificate to its computer. The TLS
// layer already checked the chain against our CA; here an unknown serial
// (revoked by renewal, or a computer removed) is 401 and a deactivated
// computer 403, at once, whatever the certificate's expiry: the row is read
// on every request, never cached, so a change by any manager node holds on
// the next request.
//
// Every agent request pays for this read, so it takes only the identity
// columns the agent handlers use; a heartbeat also learns in the same
// round trip whether commands are waiting.
func (m *Manager) authAgent(r *http.Request, rc *reqCtx) error {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return errf(http.StatusUnauthorized, "", "client certificate required")
	}
	cert := r.TLS.PeerCertificates[0]
	heartbeat := r.URL.Path == api.PathHeartbeat
	// Our certificates name their computer: watching it before the read
	// lets a long-poll trust the read's answer about commands, since
	// anything queued after it wakes the watch.
	var watch <-chan struct{}
	cn := cert.Subject.CommonName
	if heartbeat && cn != "" {
		watch = m.hub.watch(computerKey(cn))
	}
	id, err := m.store.ComputerIdentityBySerial(r.Context(), ca.Serial(cert), heartbeat)
	c := id.Computer
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.CertFingerprint != ca.Fingerprint(cert)) {
		return errf(http.StatusUnauthorized, "", "certificate not known (computer removed or certificate replaced): enrol again")
	}
	if err != nil {
		return err
	}
	if c.Deactivated {
		return errf(http.StatusForbidden, "", "computer %s is deactivated", c.ID)
	}
	rc.computer, rc.tenant = &c, c.TenantID
	rc.agent.noCommands = id.PendingKnown && !id.HasPending
	if c.ID == cn {
		rc.agent.watch = watch
	}
	return nil
}

// agentAuth is what authenticating a heartbeat learnt besides its
// computer.
type agentAuth struct {
	// noCommands: the read found no unacknowledged command.
	noCommands bool
	// watch is the computer's hub channel, taken before the read.
	watch <-chan struct{}
}
