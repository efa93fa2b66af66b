package notify

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// collector is a syslog receiver on loopback that parses what it gets with
// an independent RFC 5424 / RFC 6587 implementation.
type collector struct {
	addr  string
	mu    sync.Mutex
	conns map[string]net.Conn // by remote address
	msgs  chan *rfc5424.SyslogMessage
	errs  chan error
}

func startCollector(t *testing.T, network string, tlsConf *tls.Config) *collector {
	t.Helper()
	c := &collector{msgs: make(chan *rfc5424.SyslogMessage, 100), errs: make(chan error, 100), conns: map[string]net.Conn{}}
	deliver := func(m syslog.Message, err error) {
		if err != nil {
			c.errs <- err
			return
		}
		c.msgs <- m.(*rfc5424.SyslogMessage)
	}
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		c.addr = pc.LocalAddr().String()
		go func() {
			p := rfc5424.NewParser()
			buf := make([]byte, 70000)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				deliver(p.Parse(append([]byte(nil), buf[:n]...)))
			}
		}()
		return c
	}
	var l net.Listener
	var err error
	if tlsConf != nil {
		l, err = tls.Listen("tcp", "127.0.0.1:0", tlsConf)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c.addr = l.Addr().String()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns[conn.RemoteAddr().String()] = conn
			c.mu.Unlock()
			go func() {
				defer conn.Close()
				octetcounting.NewParser(syslog.WithListener(func(r *syslog.Result) {
					deliver(r.Message, r.Error)
				})).Parse(bufio.NewReader(conn))
			}()
		}
	}()
	return c
}

func (c *collector) next(t *testing.T) *rfc5424.SyslogMessage {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case err := <-c.errs:
		t.Fatalf("collector could not parse a message: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("collector received nothing within 5s")
	}
	return nil
}

func syslogNotifier(t *testing.T, network, addr, format, tlsJSON string) *Syslog {
	t.Helper()
	raw := `{"name":"siem","type":"syslog","settings":{"network":"` + network + `","address":"` + addr + `","format":"` + format + `","facility":4,"app_name":"mamori-mgr"` + tlsJSON + `}}`
	c, err := DecodeConfig([]byte(raw))
	if err != nil {
		t.Fatalf("DecodeConfig(%s): %v", raw, err)
	}
	n, err := New(c, Options{ProductVersion: "0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.(*Syslog).Close() })
	return n.(*Syslog)
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// checkHeader verifies the RFC 5424 header of the message for event i of
// testAlert.
func checkHeader(t *testing.T, m *rfc5424.SyslogMessage, wantPri uint8, wantHost, wantID, wantKind string) {
	t.Helper()
	if m.Version != 1 || m.Priority == nil || *m.Priority != wantPri {
		t.Errorf("version %d priority %d, want 1 and %d", m.Version, *m.Priority, wantPri)
	}
	if str(m.Hostname) != wantHost || str(m.Appname) != "mamori-mgr" || str(m.MsgID) != wantKind {
		t.Errorf("host %q app %q msgid %q, want %q mamori-mgr %q", str(m.Hostname), str(m.Appname), str(m.MsgID), wantHost, wantKind)
	}
	if m.Timestamp == nil || !m.Timestamp.Equal(testAlert().Time) && !m.Timestamp.Equal(testAlert().Time.Add(time.Second)) {
		t.Errorf("timestamp %v", m.Timestamp)
	}
	if m.StructuredData == nil || (*m.StructuredData)["mamori@53595"]["id"] != wantID || (*m.StructuredData)["mamori@53595"]["kind"] != wantKind {
		t.Errorf("structured data %v, want mamori@53595 id=%s kind=%s", m.StructuredData, wantID, wantKind)
	}
}

func TestSyslogTransportsAndFormats(t *testing.T) {
	serverTLS, caPEM := testCert(t)
	caJSON, _ := json.Marshal(caPEM)
	for _, network := range []string{"udp", "tcp", "tls"} {
		for _, format := range []string{"cef", "leef", "json"} {
			t.Run(network+"/"+format, func(t *testing.T) {
				var conf *tls.Config
				extra := ""
				if network == "tls" {
					conf = serverTLS
					extra = `,"tls":{"ca_pem":` + string(caJSON) + `}`
				}
				col := startCollector(t, network, conf)
				n := syslogNotifier(t, network, col.addr, format, extra)
				// Two alerts over one kept-open connection.
				for round := 0; round < 2; round++ {
					if err := n.Notify(context.Background(), testAlert()); err != nil {
						t.Fatalf("Notify: %v", err)
					}
					// Facility 4 (security/auth): high → 3 (error), critical → 2.
					m1, m2 := col.next(t), col.next(t)
					checkHeader(t, m1, 4*8+3, "web-1", "0193a", "log.alert")
					checkHeader(t, m2, 4*8+2, "web-1b", "0193b", "malware.detection")
					checkPayload(t, format, str(m1.Message), str(m2.Message))
				}
			})
		}
	}
}

func checkPayload(t *testing.T, format, p1, p2 string) {
	t.Helper()
	switch format {
	case "cef":
		h, ext := parseCEF(t, p1)
		want := []string{"CEF:0", "mamori", "mamori", "0.1.0", "mamori-ssh-bruteforce", "SSH brute | force", "8"}
		if strings.Join(h, "¦") != strings.Join(want, "¦") {
			t.Errorf("CEF header %q, want %q", h, want)
		}
		if ext["src"] != "10.3.98.76" || ext["spt"] != "4415" || ext["duser"] != "trend" || ext["deviceExternalId"] != "c-42" ||
			ext["msg"] != "SSH brute force from 10.3.98.76 — 5 failures" || ext["cat"] != "log.alert" {
			t.Errorf("CEF extension %v", ext)
		}
		h, ext = parseCEF(t, p2)
		if h[4] != "malware.detection" || h[6] != "10" || ext["filePath"] != "/tmp/eicar=1.com" || ext["fileHash"] != "275a021b" {
			t.Errorf("CEF %q %v", h, ext)
		}
	case "leef":
		h, attrs := parseLEEF(t, p1)
		if h[0] != "LEEF:2.0" || h[4] != "mamori-ssh-bruteforce" || h[5] != "x09" {
			t.Errorf("LEEF header %q", h)
		}
		if attrs["sev"] != "8" || attrs["src"] != "10.3.98.76" || attrs["srcPort"] != "4415" || attrs["usrName"] != "trend" || attrs["devTime"] == "" {
			t.Errorf("LEEF attributes %v", attrs)
		}
	case "json":
		var v struct {
			AlertID string `json:"alert_id"`
			Rule    RuleRef
			Event   struct {
				ID   string `json:"id"`
				Host string `json:"host"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(p1), &v); err != nil {
			t.Fatalf("JSON payload %q: %v", p1, err)
		}
		if v.AlertID != "al-1" || v.Rule.ID != "ssh-brute" || v.Event.ID != "0193a" || v.Event.Host != "web-1" {
			t.Errorf("JSON payload %+v", v)
		}
	}
}

// parseCEF splits a CEF record into its seven header fields (unescaped)
// and its extension map (unescaped), per the ArcSight CEF spec.
func parseCEF(t *testing.T, s string) ([]string, map[string]string) {
	t.Helper()
	var fields []string
	var cur strings.Builder
	i := 0
	for ; i < len(s) && len(fields) < 7; i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '|':
			fields = append(fields, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(fields) != 7 {
		t.Fatalf("CEF %q: %d header fields, want 7", s, len(fields))
	}
	ext := map[string]string{}
	rest := s[i:]
	// Keys are runs of [A-Za-z0-9] before an unescaped '='; a value runs
	// to the space before the next key.
	var key string
	var val strings.Builder
	flush := func() {
		if key != "" {
			ext[key] = strings.TrimRight(val.String(), " ")
		}
		val.Reset()
	}
	j := 0
	for j < len(rest) {
		if k, n := cefKeyAt(rest, j); n > 0 && (j == 0 || rest[j-1] == ' ') {
			flush()
			key = k
			j += n
			continue
		}
		c := rest[j]
		if c == '\\' && j+1 < len(rest) {
			switch rest[j+1] {
			case 'n':
				val.WriteByte('\n')
			case 'r':
				val.WriteByte('\r')
			default:
				val.WriteByte(rest[j+1])
			}
			j += 2
			continue
		}
		val.WriteByte(c)
		j++
	}
	flush()
	return fields, ext
}

func cefKeyAt(s string, j int) (string, int) {
	k := j
	for k < len(s) && (s[k] >= 'a' && s[k] <= 'z' || s[k] >= 'A' && s[k] <= 'Z' || s[k] >= '0' && s[k] <= '9') {
		k++
	}
	if k > j && k < len(s) && s[k] == '=' {
		return s[j:k], k - j + 1
	}
	return "", 0
}

// parseLEEF splits LEEF 2.0: six header fields, the sixth the delimiter.
func parseLEEF(t *testing.T, s string) ([]string, map[string]string) {
	t.Helper()
	parts := strings.SplitN(s, "|", 7)
	if len(parts) != 7 {
		t.Fatalf("LEEF %q: want 6 header fields and attributes", s)
	}
	delim := parts[5]
	if delim == "x09" || delim == "" {
		delim = "\t"
	}
	attrs := map[string]string{}
	for _, kv := range strings.Split(parts[6], delim) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Errorf("LEEF attribute %q has no '='", kv)
		}
		attrs[k] = v
	}
	return parts[:6], attrs
}

func TestSyslogReconnectsAfterCollectorRestart(t *testing.T) {
	col := startCollector(t, "tcp", nil)
	n := syslogNotifier(t, "tcp", col.addr, "cef", "")
	if err := n.Notify(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	col.next(t)
	col.next(t)
	// Drop the kept-open connection from the server side: the next send
	// must notice and dial again instead of losing the message.
	n.mu.Lock()
	peer := n.conn.LocalAddr()
	n.mu.Unlock()
	closeServerSide(t, col, peer)
	if err := n.Notify(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	if m := col.next(t); str(m.MsgID) != "log.alert" {
		t.Errorf("after reconnect got %q", str(m.MsgID))
	}
}

func closeServerSide(t *testing.T, c *collector, peer net.Addr) {
	t.Helper()
	c.mu.Lock()
	conn := c.conns[peer.String()]
	c.mu.Unlock()
	if conn == nil {
		t.Fatalf("collector has no connection from %s", peer)
	}
	conn.Close()
	time.Sleep(50 * time.Millisecond) // let the FIN arrive
}

func TestLEEFDelimited(t *testing.T) {
	tests := []struct{ in, want string }{
		{"LEEF:2.0|v|p|1|id|sev=1\tsrc=x", "LEEF:2.0|v|p|1|id|x09|sev=1\tsrc=x"},
		{"LEEF:2.0|v|p|1|i\\|d|sev=1", "LEEF:2.0|v|p|1|i\\|d|x09|sev=1"},
		{"LEEF:2.0|v|p|1|id|x09|sev=1", "LEEF:2.0|v|p|1|id|x09|sev=1"},
	}
	for _, tc := range tests {
		if got := leefDelimited(tc.in); got != tc.want {
			t.Errorf("leefDelimited(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A collector that requires a client certificate gets the configured one.
func TestSyslogMutualTLS(t *testing.T) {
	serverTLS, caPEM := testCert(t)
	clientTLS, clientPEM := testCert(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientTLS.Certificates[0].PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(clientPEM))
	serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
	serverTLS.ClientCAs = pool
	col := startCollector(t, "tls", serverTLS)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	n := syslogNotifier(t, "tls", col.addr, "cef", `,"tls":{"ca_pem":`+q(caPEM)+`,"client_cert_pem":`+q(clientPEM)+`,"client_key_pem":`+q(keyPEM)+`}`)
	if err := n.Notify(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	if m := col.next(t); str(m.MsgID) != "log.alert" {
		t.Errorf("got %q", str(m.MsgID))
	}
}
