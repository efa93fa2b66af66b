package manager

import (
	"net/http"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/store"
)

// handleQueryEvents filters with ?from=&to= (RFC 3339), computer, module,
// severity (minimum, by name), rule, q (text), limit and cursor.
func (m *Manager) handleQueryEvents(w http.ResponseWriter, r *http.Request, rc *reqCtx) error {
	q := r.URL.Query()
	f := store.EventFilter{ComputerID: q.Get("computer"), Module: q.Get("module"), RuleID: q.Get("rule"), Text: q.Get("q"), Cursor: q.Get("cursor")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return errf(http.StatusBadRequest, p.name, "query %s: %q is not an RFC 3339 time", p.name, v)
			}
			*p.dst = t
		}
	}
	if v := q.Get("severity"); v != "" {
		s, err := event.ParseSeverity(v)
		if err != nil {
			return errf(http.StatusBadRequest, "severity", "query severity: %v", err)
		}
		f.MinSeverity = s
	}
	limit, err := queryInt(q.Get("limit"), "limit", 100)
	if err != nil {
		return err
	}
	f.Limit = limit
	evs, next, err := m.store.Events(r.Context(), rc.tenant, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Page[event.Event]{Items: evs, Next: next})
	return nil
}
