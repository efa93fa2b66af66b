package integrity

import (
	"encoding/json"
	"testing"

	"github.com/mamori-sec/mamori/event"
	"github.com/mamori-sec/mamori/integrity/baseline"
	"github.com/mamori-sec/mamori/integrity/policy"
)

func TestDisplayPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/etc/passwd", "/etc/passwd"},
		{"/tmp/bad\xff\xfename", `/tmp/bad\xff\xfename`},
		{"/tmp/日本", "/tmp/日本"},
		{"/tmp/half\xe6\x97", `/tmp/half\xe6\x97`},
	}
	for _, c := range cases {
		if got := DisplayPath(c.in); got != c.want {
			t.Errorf("DisplayPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestEventOfNonUTF8Name: the JSON event keeps a name that is not UTF-8
// recognisable instead of replacing bytes with U+FFFD.
func TestEventOfNonUTF8Name(t *testing.T) {
	r := &policy.Rule{Path: "/tmp", Severity: event.SeverityHigh}
	e := &baseline.Entry{Path: "/tmp/x\xff", Type: baseline.TypeFile, Attrs: policy.AttrType | policy.AttrSize, Size: 3}
	f := Finding{What: Added, Path: e.Path, Rule: r, New: e}
	ev := f.Event("h")
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var back event.Event
	json.Unmarshal(b, &back)
	if back.File.Path != `/tmp/x\xff` || back.Fields["path_escaped"] != "true" || back.Severity != event.SeverityHigh {
		t.Errorf("event = %s", b)
	}
	if err := back.Validate(); err != nil {
		t.Error(err)
	}
}
