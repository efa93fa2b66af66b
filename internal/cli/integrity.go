package cli

import "github.com/spf13/cobra"

func newIntegrityCmd() *cobra.Command { return notYet("integrity", "file integrity monitoring") }
