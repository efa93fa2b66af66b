// Package firewall is mamori's host firewall engine: it applies a policy
// (package policy) to the kernel through nftables (package nft) atomically
// and idempotently, keeps it applied (drift detection and restoration),
// carries out active-response blocks (it implements response.Blocker), turns
// kernel counters into aggregated drop events, detects port scans against
// the host (package recon), and rolls back an unconfirmed policy (safe
// apply). It is a library: the agent module and `mamori firewall` drive it.
package firewall
