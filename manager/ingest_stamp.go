package manager

import (
	"encoding/json"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/store"
)

// stamper makes an event's stored JSON name the computer that sent it
// (the certificate's, never the body's claim) and its host when the agent
// left that out — without encoding the event again. The agent sets both
// on every event, so usually the bytes are stored as they came.
type stamper struct {
	computer, host []byte // `,"computer_id":"…"` and `,"host":"…"`, made once
}

// stamp returns the JSON to store for raw. An event that names another
// computer returns nil: the caller encodes it
// again from the decoded event (with the certificate's computer set), so
// the stored JSON does not carry the false claim even as an overridden key.
func (s *stamper) stamp(raw []byte, e *event.Event, c *api.Computer) []byte {
	if e.ComputerID != "" && e.ComputerID != c.ID {
		return nil
	}
	needID := e.ComputerID != c.ID
	needHost := e.Host == "" && c.Host.Hostname != ""
	if !needID && !needHost {
		return raw
	}
	if s.computer == nil {
		s.computer = keyValue("computer_id", c.ID)
		s.host = keyValue("host", c.Host.Hostname)
	}
	// Appended last: for a key given twice (in any letter case) JSON
	// decoders keep the last value, so ours wins over any claim earlier
	// in the object. raw ends with the object's '}'.
	out := make([]byte, 0, len(raw)+len(s.computer)+len(s.host))
	out = append(out, raw[:len(raw)-1]...)
	if needID {
		out = append(out, s.computer...)
	}
	if needHost {
		out = append(out, s.host...)
	}
	return append(out, '}')
}

func keyValue(k, v string) []byte {
	q, _ := json.Marshal(v) // a string always encodes
	return append([]byte(`,"`+k+`":`), q...)
}

// rowWith is store.RowOf with the JSON already at hand.
func rowWith(e *event.Event, data []byte) store.EventRow {
	rule := ""
	if e.Rule != nil {
		rule = e.Rule.ID
	}
	return store.EventRow{ID: e.ID, Time: e.Time.UnixNano(), Kind: string(e.Kind), Module: e.Module, Severity: int32(e.Severity),
		RuleID: rule, Message: e.Message, Data: data}
}
