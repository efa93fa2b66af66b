package event

import (
	"encoding/json"
	"strings"
)

// OCSF class UIDs the event kinds map to. mamori's own fields stay under
// "unmapped" so nothing is lost in the translation.
const (
	ocsfFileActivity      = 1001
	ocsfSecurityFinding   = 2001
	ocsfComplianceFinding = 2003
	ocsfDetectionFinding  = 2004
	ocsfAuthentication    = 3002
	ocsfNetworkActivity   = 4001
	ocsfHTTPActivity      = 4002
	ocsfDNSActivity       = 4003
)

func ocsfClass(k Kind) (int, string) {
	s := string(k)
	switch {
	case strings.HasPrefix(s, "integrity."):
		return ocsfFileActivity, "File System Activity"
	case strings.HasPrefix(s, "firewall."), strings.HasPrefix(s, "netips."):
		return ocsfNetworkActivity, "Network Activity"
	case strings.HasPrefix(s, "webips."):
		return ocsfHTTPActivity, "HTTP Activity"
	case strings.HasPrefix(s, "dns."):
		return ocsfDNSActivity, "DNS Activity"
	case strings.HasPrefix(s, "cloud."):
		return ocsfComplianceFinding, "Compliance Finding"
	case strings.HasPrefix(s, "malware."), strings.HasPrefix(s, "log."):
		return ocsfDetectionFinding, "Detection Finding"
	}
	return ocsfSecurityFinding, "Security Finding"
}

// OCSF returns the event as an OCSF-aligned object (class_uid, severity_id,
// time in ms, metadata, finding_info, endpoints, file, actor). Consumers
// that know OCSF read the standard keys; the full mamori event is kept under
// "unmapped".
func (e *Event) OCSF() map[string]any {
	cls, name := ocsfClass(e.Kind)
	m := map[string]any{
		"class_uid":    cls,
		"class_name":   name,
		"category_uid": cls / 1000,
		"severity_id":  int(e.Severity),
		"severity":     strings.ToUpper(e.Severity.String()[:1]) + e.Severity.String()[1:],
		"time":         e.Time.UnixMilli(),
		"message":      e.Message,
		"metadata": map[string]any{
			"uid":     e.ID,
			"product": map[string]any{"name": "mamori", "vendor_name": "mamori", "feature": map[string]any{"name": e.Module}},
			"version": "1.1.0",
		},
		"activity_name": string(e.Kind),
	}
	if e.Host != "" || e.ComputerID != "" {
		m["device"] = map[string]any{"hostname": e.Host, "uid": e.ComputerID}
	}
	if e.Rule != nil {
		m["finding_info"] = map[string]any{"uid": e.Rule.ID, "title": e.Rule.Name, "types": e.Rule.Tags, "src_url": strings.Join(e.Rule.Refs, " ")}
		if e.Rule.Author != "" {
			m["finding_info"].(map[string]any)["product_uid"] = e.Rule.Source
		}
	}
	if e.Src != nil {
		m["src_endpoint"] = e.Src
	}
	if e.Dst != nil {
		m["dst_endpoint"] = e.Dst
	}
	if e.File != nil {
		m["file"] = e.File
	}
	if e.Process != nil {
		m["actor"] = map[string]any{"process": e.Process}
	}
	if e.User != nil {
		m["user"] = e.User
	}
	if e.HTTP != nil {
		m["http_request"] = e.HTTP
	}
	if e.DNS != nil {
		m["query"] = e.DNS
	}
	if e.Cloud != nil {
		m["cloud"] = e.Cloud
	}
	if e.Action != "" {
		m["disposition"] = e.Action
	}
	if len(e.Evidence) > 0 {
		m["evidences"] = e.Evidence
	}
	m["unmapped"] = e
	return m
}

// MarshalOCSF encodes one event as an OCSF-aligned JSON line (no newline).
func (e *Event) MarshalOCSF() ([]byte, error) { return json.Marshal(e.OCSF()) }
