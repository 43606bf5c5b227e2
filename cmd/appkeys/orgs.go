package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

func init() { commands = append(commands, newOrgsCmd) }

func newOrgsCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "orgs",
		Short: "Create organizations (platform admin token)",
	}
	flags := addClientFlags(group)

	var name, ownerEmail string
	create := &cobra.Command{
		Use:   "create --name NAME --owner-email EMAIL",
		Short: "Create an organization and its owner; prints the owner's token once",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			org, err := c.CreateOrg(cmd.Context(), client.CreateOrgRequest{Name: name, OwnerEmail: ownerEmail})
			if err != nil {
				return fmt.Errorf("create organization: %w", err)
			}
			return flags.showOnce(cmd, org, tokenOnceNotice("owner token"), [][2]string{
				{"ID", org.ID},
				{"NAME", org.Name},
				{"CREATED", fmtTime(org.CreatedAt)},
				{"OWNER", org.Owner.ID + " " + org.Owner.Email},
				{"OWNER TOKEN", org.Owner.Token},
			})
		}),
	}
	create.Flags().StringVar(&name, "name", "", "organization name")
	create.Flags().StringVar(&ownerEmail, "owner-email", "", "e-mail of the organization's first owner")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("owner-email")
	group.AddCommand(create)
	return group
}

// tokenOnceNotice tells the user a credential just printed is not shown again.
func tokenOnceNotice(what string) string {
	return fmt.Sprintf("The %s is shown once and will not be shown again: store it now.", what)
}
