package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mamori-sec/mamori/malware/quarantine"
)

func newQuarantineCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "list, restore or delete quarantined files",
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", quarantine.DefaultDir, "quarantine store")
	list := &cobra.Command{
		Use:   "list",
		Short: "list quarantined files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := quarantine.Open(dir)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			es, err := s.List()
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTIME\tDETECTION\tSIZE\tPATH")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.ID, e.Time.Format("2006-01-02T15:04:05Z"), e.Detection, e.Size, e.Path)
			}
			return tw.Flush()
		},
	}
	var to string
	restore := &cobra.Command{
		Use:   "restore ID",
		Short: "put a quarantined file back with its bytes, owner and mode",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := quarantine.Open(dir)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			e, err := s.Restore(args[0], to)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			dst := to
			if dst == "" {
				dst = e.Path
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s to %s\n", e.ID, dst)
			return nil
		},
	}
	restore.Flags().StringVar(&to, "to", "", "restore to this path instead of the original")
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "delete a quarantined file for good",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := quarantine.Open(dir)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if err := s.Delete(args[0]); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, restore, del)
	return cmd
}
