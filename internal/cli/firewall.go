package cli

import "github.com/spf13/cobra"

func newFirewallCmd() *cobra.Command { return notYet("firewall", "host firewall on nftables") }
