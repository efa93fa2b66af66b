package cli

import "github.com/spf13/cobra"

func newManagerCmd() *cobra.Command { return notYet("manager", "run or administer the manager") }
