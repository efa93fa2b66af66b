package cli

import "github.com/spf13/cobra"

func newLogsCmd() *cobra.Command { return notYet("logs", "log inspection") }
