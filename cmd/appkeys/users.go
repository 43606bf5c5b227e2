package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

func init() { commands = append(commands, newUsersCmd) }

func newUsersCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "users",
		Short: "Manage the users of your organization",
	}
	flags := addClientFlags(group)

	var email, role string
	create := &cobra.Command{
		Use:   "create --email EMAIL --role owner|aura_owner|member",
		Short: "Add a user; prints the user's token once",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			u, err := c.CreateUser(cmd.Context(), client.CreateUserRequest{Email: email, Role: client.Role(role)})
			if err != nil {
				return fmt.Errorf("create user: %w", err)
			}
			return flags.showOnce(cmd, u, tokenOnceNotice("user's token"), [][2]string{
				{"ID", u.ID},
				{"EMAIL", u.Email},
				{"ROLE", string(u.Role)},
				{"CREATED", fmtTime(u.CreatedAt)},
				{"TOKEN", u.Token},
			})
		}),
	}
	create.Flags().StringVar(&email, "email", "", "the user's e-mail")
	create.Flags().StringVar(&role, "role", "", "owner, aura_owner or member")
	_ = create.MarkFlagRequired("email")
	_ = create.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the users of your organization",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			users, err := c.ListUsers(cmd.Context())
			if err != nil {
				return fmt.Errorf("list users: %w", err)
			}
			return flags.show(cmd, map[string][]client.User{"users": orEmpty(users)},
				func(w io.Writer) error { return usersTable(w, users) })
		}),
	}

	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Remove a user; the keys they created become orphaned",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			if err := c.DeleteUser(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("delete user %s: %w", args[0], err)
			}
			flags.done(cmd, "Deleted user %s; the keys they created are now orphaned.", args[0])
			return nil
		}),
	}

	group.AddCommand(create, list, del)
	return group
}

func usersTable(w io.Writer, users []client.User) error {
	t := newTable(w, "ID", "EMAIL", "ROLE", "CREATED")
	for _, u := range users {
		t.row(u.ID, u.Email, string(u.Role), fmtTime(u.CreatedAt))
	}
	return t.flush()
}

// orEmpty makes a nil list print as [] in JSON, as the API sends it.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
