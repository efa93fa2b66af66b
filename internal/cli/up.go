package cli

import "github.com/spf13/cobra"

func newUpCmd() *cobra.Command { return notYet("up", "run a manager and a local agent in one process") }
