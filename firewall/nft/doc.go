// Package nft renders a compiled firewall policy into mamori's own nftables
// table ("inet mamori") and talks to the kernel through netlink
// (github.com/google/nftables), never through the nft binary. Each piece of
// a rule renders twice, as netlink expressions and as the nft text it means,
// from one place, so tests can hold the two against each other and the nft
// text can be loaded with `nft -f` for comparison.
//
// A policy is applied in one netlink batch, which the kernel commits
// atomically: either the whole new table replaces the old one or nothing
// changes. Every rule carries a comment with the policy fingerprint, which
// makes re-applying an unchanged policy a read-only no-op and lets a drift
// check see rules someone else added, removed or replaced.
package nft
