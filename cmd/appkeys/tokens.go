package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

func init() { commands = append(commands, newTokensCmd) }

// newTokensCmd manages the caller's own API tokens (those of the user
// whose token APPKEYS_TOKEN is).
func newTokensCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "tokens",
		Short: "Manage your own API tokens",
	}
	flags := addClientFlags(group)

	var name, expires string
	create := &cobra.Command{
		Use:   "create --name NAME [--expires 90d|12h|2027-01-31]",
		Short: "Create an API token for yourself; prints it once",
		Long: `Create an API token for yourself and print it once. Without --expires it
works until revoked; with it, every call after that time is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := client.CreateUserTokenRequest{Name: name}
			if expires != "" {
				exp, err := parseExpires(expires, time.Now())
				if err != nil {
					return err
				}
				req.ExpiresAt = &exp
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			t, err := c.CreateMyToken(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("create token: %w", err)
			}
			return flags.showOnce(cmd, t, tokenOnceNotice("token"), [][2]string{
				{"ID", t.ID},
				{"NAME", t.Name},
				{"EXPIRES", fmtExpiry(t.ExpiresAt)},
				{"TOKEN", t.Token},
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for, e.g. laptop or ci")
	create.Flags().StringVar(&expires, "expires", "", "when it stops working: 90d, 12h, 2027-01-31 or an RFC 3339 time (default: never)")
	_ = create.MarkFlagRequired("name")

	list := &cobra.Command{
		Use:   "list",
		Short: "List your live API tokens; * marks the one in use",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			tokens, err := c.ListMyTokens(cmd.Context())
			if err != nil {
				return fmt.Errorf("list tokens: %w", err)
			}
			return flags.show(cmd, map[string][]client.UserToken{"tokens": orEmpty(tokens)},
				func(w io.Writer) error { return tokensTable(w, tokens) })
		}),
	}

	var yes bool
	revoke := &cobra.Command{
		Use:   "revoke ID [--yes]",
		Short: "Revoke one of your API tokens at once",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			id := args[0]
			err := confirm(cmd, yes, "revoke token "+id, func() (string, error) {
				return fmt.Sprintf("Revoke token %s? Anything still using it, and console sessions started with it, stop working.", id), nil
			})
			if err != nil {
				return err
			}
			if err := c.RevokeMyToken(cmd.Context(), id); err != nil {
				return fmt.Errorf("revoke token %s: %w", id, err)
			}
			flags.done(cmd, "Revoked token %s.", id)
			return nil
		}),
	}
	revoke.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")

	group.AddCommand(create, list, revoke)
	return group
}

func tokensTable(w io.Writer, tokens []client.UserToken) error {
	t := newTable(w, "ID", "NAME", "PREFIX", "CREATED", "EXPIRES", "")
	for _, u := range tokens {
		mark := ""
		if u.Current {
			mark = "*"
		}
		t.row(u.ID, u.Name, u.Prefix+"…", fmtTime(u.CreatedAt), fmtExpiry(u.ExpiresAt), mark)
	}
	return t.flush()
}

func fmtExpiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}
