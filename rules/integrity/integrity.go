// Package integrity embeds mamori's default file integrity policies so the
// binary works with no file on disk: `mamori integrity init` with no policy
// and no path uses Linux.
package integrity

import _ "embed"

// Linux is the built-in Linux policy (YAML, see integrity/policy).
//
//go:embed linux.yaml
var Linux []byte

// LinuxName is the file name errors in Linux refer to.
const LinuxName = "builtin:linux.yaml"
