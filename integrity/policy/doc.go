// Package policy is the integrity-monitoring policy: which paths to watch,
// how deep, which files to include or exclude, which attributes to record,
// how severe a change is, and which changes are expected (logs, caches).
// Policies are YAML files decoded strictly; errors name the file and line.
package policy
