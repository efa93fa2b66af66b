package manager

import (
	"encoding/json"
	"testing"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/manager/managertest"
)

// BenchmarkDecodeBatchFast prices the ingest fast path alone on a
// 2000-event batch, reusing the decoded slice as the handler does.
func BenchmarkDecodeBatchFast(b *testing.B) {
	evs := managertest.Events(2000, "loginspect", event.SeverityHigh)
	for i := range evs {
		evs[i].Src = &event.Endpoint{IP: "203.0.113.7", Port: 52144}
		evs[i].User = &event.User{Name: "admin"}
		evs[i].Evidence = []string{"Failed password for invalid user admin from 203.0.113.7 port 52144 ssh2"}
	}
	body, err := json.Marshal(api.EventBatch{Events: evs})
	if err != nil {
		b.Fatal(err)
	}
	var dst []event.Event
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		out, raw, err := decodeBatchInto(body, dst)
		if err != nil || raw == nil {
			b.Fatal(err, raw == nil)
		}
		dst = out[:0]
	}
}
