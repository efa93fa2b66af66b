// Package firewall embeds mamori's default host firewall policies, the
// YAML files beside it, so the agent and `mamori firewall` can use them
// without files on disk.
package firewall

import _ "embed"

// Default is the default policy (default.yaml).
//
//go:embed default.yaml
var Default []byte
