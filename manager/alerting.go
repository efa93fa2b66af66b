package manager

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/alerting"
	"github.com/mamori-sec/mamori/manager/notify"
	"github.com/mamori-sec/mamori/manager/store"
)

// spec turns a stored alert rule into the matcher's rule.
func spec(ar api.AlertRule) alerting.RuleSpec {
	s := alerting.RuleSpec{ID: alerting.RuleID(ar.ID), Name: ar.Name, Enabled: &ar.Enabled, Notifiers: ar.NotifierIDs}
	if ar.Module != "" {
		s.Modules = []string{ar.Module}
	}
	if ar.RuleID != "" {
		s.Rules = []string{ar.RuleID}
	}
	if ar.Group != "" {
		s.Groups = []string{ar.Group}
	}
	if ar.MinSeverity != "" {
		if sev, err := event.ParseSeverity(ar.MinSeverity); err == nil {
			s.MinSeverity = alerting.MinSeverity(sev)
		}
	}
	return s
}

// alertOn raises alerts for newly stored events (a retried batch never
// reaches here twice) and queues their notifications. Failures are logged:
// the events are stored either way.
func (m *Manager) alertOn(ctx context.Context, c api.Computer, evs []event.Event) {
	rules, err := m.store.AlertRules(ctx, c.TenantID)
	if err != nil {
		m.log.Error("reading alert rules", "err", err)
		return
	}
	if len(rules) == 0 {
		return
	}
	specs := make([]alerting.RuleSpec, len(rules))
	byID := map[alerting.RuleID]api.AlertRule{}
	for i, r := range rules {
		specs[i] = spec(r)
		byID[specs[i].ID] = r
	}
	matcher, err := alerting.Compile(specs)
	if err != nil {
		m.log.Warn("compiling alert rules", "tenant", c.TenantID, "err", err) // the good ones still run
	}
	comp := alerting.Computer{ID: c.ID, Group: c.Group, Tags: c.Tags}
	for i := range evs {
		e := &evs[i]
		for _, id := range matcher.Match(e, comp) {
			ar := byID[id]
			a := api.Alert{ID: store.NewID("al_"), TenantID: c.TenantID, AlertRuleID: ar.ID, EventID: e.ID, ComputerID: c.ID,
				Severity: e.Severity.String(), Message: e.Message, Created: time.Now().UTC()}
			fresh, err := m.store.InsertAlert(ctx, a)
			if err != nil {
				m.log.Error("storing alert", "err", err)
				continue
			}
			if fresh {
				m.notify(ctx, ar, a, c, *e)
			}
		}
	}
}

// notify queues an alert for each of the rule's notifiers. The dispatcher
// retries with back-off in the background; ingest never waits on it.
func (m *Manager) notify(ctx context.Context, ar api.AlertRule, a api.Alert, c api.Computer, e event.Event) {
	for _, id := range ar.NotifierIDs {
		cfg, err := m.store.Notifier(ctx, c.TenantID, id)
		if err != nil {
			m.log.Warn("alert rule names a missing notifier", "rule", ar.ID, "notifier", id)
			continue
		}
		err = m.notifier.Send(cfg.ID, cfg.Name, cfg.Type, cfg.Config, notify.Alert{
			ID: a.ID, Tenant: a.TenantID, Rule: notify.RuleRef{ID: ar.ID, Name: ar.Name},
			Computer: notify.ComputerRef{ID: c.ID, Hostname: c.Host.Hostname, Group: c.Group, Tags: c.Tags},
			Events:   []event.Event{e}, Count: 1, Time: a.Created,
		})
		if err != nil {
			m.log.Warn("queueing notification", "notifier", id, "alert", a.ID, "err", err)
		}
	}
}

// flushNotifications sends the summaries of closed throttle windows ("N
// more alerts suppressed") soon after each closes: a tenth of the window,
// between 10 ms and a second, late.
func (m *Manager) flushNotifications(ctx context.Context) {
	every := min(max(m.cfg.NotifyWindow/10, 10*time.Millisecond), time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if n := m.notifier.Flush(now); n > 0 {
				m.log.Info("sent throttled-notification summaries", "count", n)
			}
		}
	}
}

// validateNotifierConfig checks a notifier's settings with the sender's own
// strict decoder; field names come back relative to "config".
func validateNotifierConfig(typ string, cfg json.RawMessage) error {
	err := notify.ValidateSettings(typ, cfg)
	if err == nil {
		return nil
	}
	var fe *notify.FieldError
	if errors.As(err, &fe) {
		f := "config." + strings.TrimPrefix(fe.Field, "settings.")
		return errf(http.StatusBadRequest, f, "field %s: %v", f, fe.Err)
	}
	return errf(http.StatusBadRequest, "config", "field config: %v", err)
}
