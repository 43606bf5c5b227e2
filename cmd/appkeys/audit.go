package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

func init() { commands = append(commands, newAuditCmd) }

func newAuditCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "audit",
		Short: "Read your organization's audit log (owners and aura owners)",
	}
	flags := addClientFlags(group)

	var limit int
	list := &cobra.Command{
		Use:   "list [--limit N]",
		Short: "List the newest audit records, newest first: changes, secret reads, console logins and logouts",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			if limit < 1 || limit > 1000 {
				return fmt.Errorf("invalid --limit %d: use 1 to 1000", limit)
			}
			recs, err := c.ListAudit(cmd.Context(), limit)
			if err != nil {
				return fmt.Errorf("list audit records: %w", err)
			}
			return flags.show(cmd, map[string][]client.AuditRecord{"audit": orEmpty(recs)},
				func(w io.Writer) error { return auditTable(w, recs) })
		}),
	}
	list.Flags().IntVar(&limit, "limit", 100, "how many records, 1 to 1000")
	group.AddCommand(list)
	return group
}

func auditTable(w io.Writer, recs []client.AuditRecord) error {
	t := newTable(w, "AT", "ACTOR", "ACTION", "TARGET", "DETAIL")
	for _, a := range recs {
		t.row(fmtTime(a.At), a.Actor, a.Action, a.Target, a.Detail)
	}
	return t.flush()
}
