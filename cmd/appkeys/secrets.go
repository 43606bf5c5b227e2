package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

func init() { commands = append(commands, newSecretsCmd) }

// maxSecretBytes bounds what --from-stdin reads; the service has its own
// body limit, this only keeps a wrong pipe from filling memory.
const maxSecretBytes = 1 << 20

func newSecretsCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "secrets",
		Short: "Manage your organization's secrets (encrypted at rest)",
	}
	flags := addClientFlags(group)

	var name, value string
	var fromStdin bool
	create := &cobra.Command{
		Use:   "create --name NAME (--value VALUE | --from-stdin)",
		Short: "Store a secret",
		Long: `Store a secret. Prefer --from-stdin: a --value on the command line
lands in your shell history and is visible to other users in the process list.
One trailing newline of the standard input is dropped.`,
		Args: cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			var err error
			if fromStdin {
				if value, err = readSecretValue(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			s, err := c.CreateSecret(cmd.Context(), client.CreateSecretRequest{Name: name, Value: value})
			if err != nil {
				return fmt.Errorf("create secret %s: %w", name, err)
			}
			return flags.showFields(cmd, s, [][2]string{
				{"NAME", s.Name},
				{"CREATED", fmtTime(s.CreatedAt)},
				{"CREATED BY", s.CreatedBy},
			})
		}),
	}
	create.Flags().StringVar(&name, "name", "", "secret name")
	create.Flags().StringVar(&value, "value", "", "secret value (visible in shell history; prefer --from-stdin)")
	create.Flags().BoolVar(&fromStdin, "from-stdin", false, "read the value from standard input")
	_ = create.MarkFlagRequired("name")
	create.MarkFlagsMutuallyExclusive("value", "from-stdin")
	create.MarkFlagsOneRequired("value", "from-stdin")

	list := &cobra.Command{
		Use:   "list",
		Short: "List secret names (not values)",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			secrets, err := c.ListSecrets(cmd.Context())
			if err != nil {
				return fmt.Errorf("list secrets: %w", err)
			}
			return flags.show(cmd, map[string][]client.Secret{"secrets": orEmpty(secrets)}, func(w io.Writer) error {
				t := newTable(w, "NAME", "CREATED", "CREATED BY")
				for _, s := range secrets {
					t.row(s.Name, fmtTime(s.CreatedAt), s.CreatedBy)
				}
				return t.flush()
			})
		}),
	}

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a secret and its value (the access is audited)",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			s, err := c.GetSecret(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("get secret %s: %w", args[0], err)
			}
			return flags.showFields(cmd, s, [][2]string{
				{"NAME", s.Name},
				{"VALUE", s.Value},
				{"CREATED", fmtTime(s.CreatedAt)},
				{"CREATED BY", s.CreatedBy},
			})
		}),
	}

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a secret",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			if err := c.DeleteSecret(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("delete secret %s: %w", args[0], err)
			}
			flags.done(cmd, "Deleted secret %s.", args[0])
			return nil
		}),
	}

	group.AddCommand(create, list, get, del)
	return group
}

func readSecretValue(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSecretBytes+1))
	if err != nil {
		return "", fmt.Errorf("read the secret value from standard input: %w", err)
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("the secret value on standard input is larger than %d bytes", maxSecretBytes)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", errors.New("the secret value on standard input is empty")
	}
	return v, nil
}
