package manager

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/ca"
	"github.com/mamori-sec/mamori/manager/store"
	"github.com/mamori-sec/mamori/rulepack"
)

const maxAgentBody = 256 << 10

func (m *Manager) handleEnroll(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ctx := r.Context()
	var req api.EnrollRequest
	if err := decode(w, r, maxAgentBody, &req); err != nil {
		m.metrics.enrollments.WithLabelValues("bad_request").Inc()
		return err
	}
	switch {
	case req.Token == "":
		return errf(http.StatusBadRequest, "token", "field token: required")
	case req.CSR == "":
		return errf(http.StatusBadRequest, "csr", "field csr: required")
	case req.Host.MachineID == "":
		return errf(http.StatusBadRequest, "host.machine_id", "field host.machine_id: required (clone detection needs it)")
	}
	refuse := func(status int, field, reason string, err error) error {
		m.metrics.enrollments.WithLabelValues("refused").Inc()
		tenant := m.store.TokenTenant(ctx, req.Token)
		m.audit(ctx, rc, tenant, "enroll.refused", "computer", "", map[string]string{"reason": reason, "hostname": req.Host.Hostname, "error": err.Error()})
		return errf(status, field, "%s", reason)
	}
	csr, err := ca.ParseCSR(req.CSR)
	if err != nil {
		return refuse(http.StatusBadRequest, "csr", err.Error(), err)
	}
	id := store.NewID("c_")
	iss, err := m.ca.SignClient(csr, id, m.cfg.CertValidity)
	if err != nil {
		return err
	}
	c := api.Computer{ID: id, Host: req.Host, CertSerial: iss.Serial, CertFingerprint: iss.Fingerprint, CertNotAfter: iss.Cert.NotAfter, Enrolled: time.Now().UTC()}
	c, tok, err := m.store.Enroll(ctx, req.Token, c)
	switch {
	case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUsedUp), errors.Is(err, store.ErrTokenRevoked):
		// The agent learns only that the token is not valid; the audit log
		// says why.
		m.metrics.enrollments.WithLabelValues("refused").Inc()
		m.audit(ctx, rc, tok.TenantID, "enroll.refused", "token", tok.ID, map[string]string{"reason": err.Error(), "hostname": req.Host.Hostname})
		return errf(http.StatusUnauthorized, "token", "invalid enrolment token (unknown, expired, revoked or used up)")
	case err != nil:
		return err
	}
	m.metrics.enrollments.WithLabelValues("ok").Inc()
	rc.computer = &c
	m.audit(ctx, rc, c.TenantID, "computer.enroll", "computer", c.ID, map[string]any{"token": tok.ID, "hostname": c.Host.Hostname, "machine_id": c.Host.MachineID, "instance_id": c.Host.InstanceID})
	ep, _, err := m.effective(ctx, c)
	if err != nil {
		return err
	}
	keys := make([]string, len(m.trusted))
	for i, k := range m.trusted {
		keys[i] = rulepack.EncodePublicKey(k)
	}
	writeJSON(w, http.StatusOK, api.EnrollResponse{ComputerID: c.ID, TenantID: c.TenantID, Certificate: string(iss.PEM), CA: string(m.ca.PEM()),
		RulePackKeys: keys, HeartbeatSeconds: ep.HeartbeatSeconds})
	return nil
}

func (m *Manager) handleRenew(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ctx := r.Context()
	var req api.RenewRequest
	if err := decode(w, r, maxAgentBody, &req); err != nil {
		return err
	}
	c := rc.computer
	csr, err := ca.ParseCSR(req.CSR)
	if err == nil && csr.Subject.CommonName != "" && csr.Subject.CommonName != c.ID {
		err = fmt.Errorf("field csr: subject CN %q does not match computer %s", csr.Subject.CommonName, c.ID)
	}
	if err != nil {
		m.audit(ctx, rc, "", "renew.refused", "computer", c.ID, map[string]string{"error": err.Error()})
		return errf(http.StatusBadRequest, "csr", "%v", err)
	}
	iss, err := m.ca.SignClient(csr, c.ID, m.cfg.CertValidity)
	if err != nil {
		return err
	}
	if err := m.store.SetCertificate(ctx, c.TenantID, c.ID, iss.Serial, iss.Fingerprint, iss.Cert.NotAfter); err != nil {
		return err
	}
	m.audit(ctx, rc, "", "computer.renew", "computer", c.ID, map[string]string{"serial": iss.Serial})
	writeJSON(w, http.StatusOK, api.RenewResponse{Certificate: string(iss.PEM), CA: string(m.ca.PEM())})
	return nil
}

// parseWait reads ?wait= as a Go duration or seconds.
func parseWait(s string, max time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n, err2 := strconv.Atoi(s)
		if err2 != nil || n < 0 {
			return 0, errf(http.StatusBadRequest, "wait", "query wait: %q is not a duration", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, errf(http.StatusBadRequest, "wait", "query wait: negative")
	}
	return min(d, max), nil
}

// clonePollInterval bounds how stale a long-poll can be when the change was
// made on another manager node.
const clonePollInterval = 5 * time.Second

func (m *Manager) handleHeartbeat(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ctx := r.Context()
	start := time.Now()
	var hb api.Heartbeat
	if err := decode(w, r, maxAgentBody, &hb); err != nil {
		return err
	}
	wait, err := parseWait(r.URL.Query().Get("wait"), m.cfg.MaxWait)
	if err != nil {
		return err
	}
	c := *rc.computer
	// A copied disk image carries the certificate but not the machine: the
	// first heartbeat from a different machine-id (or cloud instance-id) is
	// refused so the copy enrols as a computer of its own, and the original
	// keeps its identity.
	if (c.Host.MachineID != "" && hb.Host.MachineID != c.Host.MachineID) ||
		(c.Host.InstanceID != "" && hb.Host.InstanceID != "" && hb.Host.InstanceID != c.Host.InstanceID) {
		m.audit(ctx, rc, "", "computer.clone_detected", "computer", c.ID, map[string]string{
			"machine_id": hb.Host.MachineID, "instance_id": hb.Host.InstanceID, "hostname": hb.Host.Hostname,
			"recorded_machine_id": c.Host.MachineID, "recorded_instance_id": c.Host.InstanceID})
		return errf(http.StatusConflict, "host.machine_id", "identity belongs to computer %s on another machine (cloned disk image?): enrol again with a token to become a computer of your own", c.ID)
	}
	now := time.Now().UTC()
	var skew time.Duration
	if !hb.AgentTime.IsZero() {
		skew = hb.AgentTime.Sub(now)
	}
	// Keep recorded identity fields: the heartbeat may not overwrite them.
	hb.Host.MachineID, hb.Host.InstanceID = c.Host.MachineID, c.Host.InstanceID
	m.hbw.add(store.HeartbeatRecord{TenantID: c.TenantID, ComputerID: c.ID, Heartbeat: hb, Skew: skew, At: now})
	m.metrics.heartbeats.Inc()
	var resp api.HeartbeatResponse
	waited := time.Duration(0)
	cur := c // identity as read for authentication; re-read after each wake-up
	for {
		// Watch before reading, so a change between the read and the wait
		// still wakes us. The first read was authentication's: it watched
		// the computer before it when it could.
		wc, authWatched := rc.agent.watch, waited == 0 && rc.agent.watch != nil
		if !authWatched {
			wc = m.hub.watch(computerKey(c.ID))
		}
		wt := m.hub.watch(tenantKey(c.TenantID))
		noCommands := rc.agent.noCommands
		if waited > 0 {
			// One round trip for what the loop needs: the identity (policy,
			// overrides, deactivated) and whether commands wait.
			id, err := m.store.ComputerIdentityByID(ctx, c.TenantID, c.ID, true)
			if err != nil {
				return err
			}
			cur, noCommands = id.Computer, !id.HasPending
		}
		ep, _, err := m.effective(ctx, cur)
		if err != nil {
			return err
		}
		// Authentication already looked for commands in its read. That
		// answer does for a heartbeat that will not wait, or whose watch
		// was taken before that read; otherwise a long-poll must read after
		// watching, so a command queued in between still wakes it. A
		// re-read after a wake-up follows the watch.
		var cmds []api.Command
		willWait := ep.Version == hb.PolicyVersion && waited < wait && !cur.Deactivated
		if (waited == 0 && willWait && !authWatched) || !noCommands {
			if cmds, err = m.store.PendingCommands(ctx, c.TenantID, c.ID); err != nil {
				return err
			}
		}
		resp = api.HeartbeatResponse{ServerTime: time.Now().UTC(), PolicyVersion: ep.Version, HeartbeatSeconds: ep.HeartbeatSeconds,
			Commands: cmds, ClockSkewSeconds: skew.Seconds()}
		if ep.Version != hb.PolicyVersion || len(cmds) > 0 || waited >= wait || cur.Deactivated {
			break
		}
		if waited == 0 {
			m.metrics.heartbeatLatency.Observe(time.Since(start).Seconds())
		}
		step := min(wait-waited, clonePollInterval)
		t0 := time.Now()
		select {
		case <-wc:
		case <-wt:
		case <-time.After(step):
		case <-ctx.Done():
			return nil
		}
		waited += max(time.Since(t0), time.Millisecond)
	}
	if waited == 0 {
		m.metrics.heartbeatLatency.Observe(time.Since(start).Seconds())
	}
	cert := r.TLS.PeerCertificates[0]
	life := cert.NotAfter.Sub(cert.NotBefore)
	resp.RenewCertificate = time.Until(cert.NotAfter) < life/3
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (m *Manager) handleAgentPolicy(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	ep, _, err := m.effective(r.Context(), *rc.computer)
	if err != nil {
		return err
	}
	etag := `"` + ep.Version + `"`
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || strings.Trim(inm, `"`) == ep.Version) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	writeJSON(w, http.StatusOK, ep)
	return nil
}

func (m *Manager) handleAgentRulePack(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	b, err := m.store.RulePackArchive(r.Context(), rc.tenant, r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
	return nil
}

func (m *Manager) handleIngest(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	start := time.Now()
	body, err := readIngestBody(w, r)
	if err != nil {
		return err
	}
	// The rows below point into body: it goes back to the pool only once
	// the store has committed them.
	defer putBody(body)
	sc := ingestScratchPool.Get().(*ingestScratch)
	defer sc.put()
	evs, raw, err := decodeBatchInto(body.Bytes(), sc.evs)
	if err != nil {
		return err
	}
	if cap(evs) > cap(sc.evs) {
		sc.evs = evs[:0]
	}
	if len(evs) > api.MaxBatchEvents {
		return errf(http.StatusRequestEntityTooLarge, "events", "field events: %d events, at most %d a batch", len(evs), api.MaxBatchEvents)
	}
	c := rc.computer
	res := api.IngestResult{}
	// The accepted events are moved to the front of evs (good = evs[:k]):
	// no second copy of the batch.
	k := 0
	rows := sc.rows[:0]
	seen := sc.seen
	var stamp stamper
	for i := range evs {
		e := &evs[i]
		if err := e.Validate(); err != nil {
			res.Rejected++
			res.Errors = append(res.Errors, fmt.Sprintf("events[%d]: %v", i, err))
			continue
		}
		if seen[e.ID] {
			res.Duplicates++
			continue
		}
		seen[e.ID] = true
		var data []byte
		if raw != nil {
			data = stamp.stamp(raw[i], e, c)
		}
		// Who sent it is the certificate's computer, never the body's claim.
		e.ComputerID = c.ID
		if e.Host == "" {
			e.Host = c.Host.Hostname
		}
		var row store.EventRow
		if data != nil {
			row = rowWith(e, data)
		} else if row, err = store.RowOf(e); err != nil {
			return err
		}
		if k != i {
			evs[k] = *e
		}
		k++
		rows = append(rows, row)
	}
	sc.rows = rows
	good := evs[:k]
	inserted, err := m.store.InsertEventRows(r.Context(), c.TenantID, c.ID, rows)
	if err != nil {
		return err
	}
	res.Accepted = len(inserted)
	res.Duplicates += len(good) - len(inserted)
	m.metrics.events.WithLabelValues("accepted").Add(float64(res.Accepted))
	m.metrics.events.WithLabelValues("duplicate").Add(float64(res.Duplicates))
	m.metrics.events.WithLabelValues("rejected").Add(float64(res.Rejected))
	m.metrics.ingestLatency.Observe(time.Since(start).Seconds())
	if len(inserted) > 0 {
		fresh := good
		if len(inserted) < len(good) {
			fresh = make([]event.Event, 0, len(inserted))
			for _, e := range good {
				if inserted[e.ID] {
					fresh = append(fresh, e)
				}
			}
		}
		m.alertOn(r.Context(), *c, fresh)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (m *Manager) handleCommandAck(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	var ack api.CommandAck
	if err := decode(w, r, maxAgentBody, &ack); err != nil {
		return err
	}
	if err := m.store.AckCommand(r.Context(), rc.tenant, rc.computer.ID, r.PathValue("id"), ack); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
