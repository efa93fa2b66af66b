package cli

import "github.com/spf13/cobra"

func newQuarantineCmd() *cobra.Command {
	return notYet("quarantine", "list, restore or delete quarantined files")
}
