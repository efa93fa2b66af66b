package cli

import "github.com/spf13/cobra"

func newScanCmd() *cobra.Command { return notYet("scan PATH...", "scan files for malware") }
