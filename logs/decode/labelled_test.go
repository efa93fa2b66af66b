package decode

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const labelledDir = "../../../shared/corpus/logs-fail2ban-labelled/fail2ban/tests/files/logs"

// supported lists the fail2ban test logs of services we decode, with the
// agreement we hold ourselves to (the rest are lines whose host fail2ban
// takes from a neighbouring line, or formats we do not decode).
var supported = map[string]float64{
	"sshd":              0.95,
	"sshd-journal":      0.95,
	"pam-generic":       0.9,
	"nginx-http-auth":   0.9,
	"nginx-botsearch":   0.9,
	"nginx-bad-request": 0.5,
	"apache-auth":       0.9,
	"apache-noscript":   0.9,
	"apache-botsearch":  0.9,
	"apache-badbots":    0.9,
	"apache-shellshock": 0.9,
	"apache-overflows":  0.5,
	"nginx-forbidden":   0.9,
}

// TestFail2banLabelled runs every line labelled "match: true" with a host
// through the decoder and checks it extracts the same host as fail2ban's
// filters. Lines whose host does not occur in the line (fail2ban joins it
// from another line of the same connection) are counted apart.
func TestFail2banLabelled(t *testing.T) {
	if _, err := os.Stat(labelledDir); err != nil {
		skipOrFail(t, "corpus logs-fail2ban-labelled not found: "+err.Error())
	}
	var totalOK, totalN int
	for name, floor := range supported {
		f, err := os.Open(filepath.Join(labelledDir, name))
		if err != nil {
			t.Errorf("opening %s: %v", name, err)
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var label *struct {
			Match bool   `json:"match"`
			Host  string `json:"host"`
		}
		ok, n, offLine := 0, 0, 0
		var d Decoder
		var r Record
		lineNo := 0
		for sc.Scan() {
			lineNo++
			l := sc.Text()
			if strings.HasPrefix(l, "# failJSON:") {
				label = nil
				_ = json.Unmarshal([]byte(strings.TrimSpace(l[len("# failJSON:"):])), &label)
				continue
			}
			if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" || label == nil {
				continue
			}
			lab := label
			label = nil
			if !lab.Match || lab.Host == "" {
				continue
			}
			if !strings.Contains(l, lab.Host) {
				offLine++
				continue
			}
			if name == "sshd-journal" {
				l = "Jan  1 00:00:00 " + l
			}
			d.Decode(l, &r)
			got, _ := r.Get(SourceIP)
			if got == "" {
				got, _ = r.Get(SourceDomain)
			}
			n++
			if got == strings.TrimPrefix(lab.Host, "::ffff:") {
				ok++
			} else if testing.Verbose() {
				t.Logf("%s:%d: host %q, want %q: %s", name, lineNo, got, lab.Host, l)
			}
		}
		f.Close()
		ratio := float64(ok) / float64(max(n, 1))
		t.Logf("fail2ban-labelled %-18s host agreement %d/%d = %.3f (%d more labels name a host not on their line)", name, ok, n, ratio, offLine)
		if ratio < floor {
			t.Errorf("%s: host agreement %.3f below %.2f", name, ratio, floor)
		}
		totalOK += ok
		totalN += n
	}
	t.Logf("fail2ban-labelled overall host agreement %d/%d = %.3f", totalOK, totalN, float64(totalOK)/float64(max(totalN, 1)))
}

func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// TestLoghubDecodeCoverage decodes the real Loghub logs and checks every
// line is understood at least at the envelope, and that the client of
// Apache error lines and the source of sshd lines are extracted.
func TestLoghubDecodeCoverage(t *testing.T) {
	for _, tc := range []struct {
		file       string
		marker     string
		minDecoded float64
	}{
		{"Apache/Apache_2k.log", "[client ", 1.0},
		{"OpenSSH/OpenSSH_2k.log", " from ", 0.95},
		{"Linux/Linux_2k.log", "rhost=", 0.4},
	} {
		b, err := os.ReadFile("../../../shared/corpus/logs-loghub/" + tc.file)
		if err != nil {
			skipOrFail(t, "loghub corpus: "+err.Error())
		}
		var d Decoder
		var r Record
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		decoded, withMarker, withHost := 0, 0, 0
		for _, l := range lines {
			d.Decode(l, &r)
			if r.Format == "" {
				t.Errorf("%s: envelope not recognised: %q", tc.file, l)
			}
			if r.Decoded {
				decoded++
			}
			if strings.Contains(l, tc.marker) {
				withMarker++
				ip, _ := r.Get(SourceIP)
				dom, _ := r.Get(SourceDomain)
				if ip != "" || dom != "" {
					withHost++
				}
			}
		}
		ratio := float64(decoded) / float64(len(lines))
		t.Logf("%s: %d lines, %.1f%% decoded by a service decoder, source found on %d of %d lines with %q", tc.file, len(lines), 100*ratio, withHost, withMarker, tc.marker)
		if ratio < tc.minDecoded {
			t.Errorf("%s: decoded %.2f < %.2f", tc.file, ratio, tc.minDecoded)
		}
	}
}
