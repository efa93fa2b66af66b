// Package policy is the host firewall's policy model: ordered rules with
// allow, deny, log-only and force-allow actions, named IP and port lists,
// per-direction defaults. It decodes the manager's JSON and the CLI's YAML
// strictly into the same structs, validates them into a compiled form whose
// errors name the rule and field, warns about shadowed and contradictory
// rules, and answers "would this connection be allowed, and by which rule"
// without touching the kernel.
package policy
