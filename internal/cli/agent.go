package cli

import "github.com/spf13/cobra"

func newAgentCmd() *cobra.Command { return notYet("agent", "run or administer the agent") }
