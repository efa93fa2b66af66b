package decode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCustomDecoders: a user decoder file either loads or fails with an
// error naming the file; a loaded decoder never panics on any line.
func FuzzCustomDecoders(f *testing.F) {
	f.Add("decoders:\n  - name: app\n    program: app\n    format: regex\n    regex: 'login failed for (?P<user>\\S+) from (?P<ip>\\S+)'\n    fields: {ip: source.ip, user: user.name}\n", "login failed for bob from 10.0.0.1")
	f.Add("decoders:\n  - name: kv\n    format: kv\n    contains: 'act='\n", "act=deny src=1.2.3.4 x")
	f.Add("decoders:\n  - name: j\n    program: j\n    format: json\n", `{"a":1,"b":{"c":"d"}}`)
	f.Add("decoders:\n  - name: bad\n    format: regex\n    regex: '('\n", "x")
	f.Add("decoders: [", "")
	f.Fuzz(func(t *testing.T, spec, line string) {
		path := filepath.Join(t.TempDir(), "decoders.yaml")
		if err := os.WriteFile(path, []byte(spec), 0o600); err != nil {
			t.Fatal(err)
		}
		ds, err := LoadCustom(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Errorf("LoadCustom error %q does not name the file", err)
			}
			return
		}
		for _, d := range ds {
			var r Record
			d.decode(line, &r)
		}
	})
}
