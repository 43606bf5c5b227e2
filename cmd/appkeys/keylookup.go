package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// maxLookupBytes bounds what keys lookup reads: a key is 53 characters, a
// pasted line with some blanks around it a little more.
const maxLookupBytes = 4 << 10

// newKeysLookupCmd is `appkeys keys lookup`: the key comes on standard
// input, never as an argument, so it stays out of shell history and of
// the process list.
func newKeysLookupCmd(flags *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "lookup < FILE",
		Short: "Tell which of your organization's keys a key found somewhere is",
		Long: `Read a key from standard input and tell which of your organization's keys it
is: its id, app, name, state (revoked included, and whether a leak report
revoked it), creator, creation and last use. For Organization Owners and Aura
Owners, answering a leak. A key of another organization is not found, as a
key that does not exist.

The key is read from standard input so that it stays out of shell history:
paste it and press Ctrl-D, or
  appkeys keys lookup < leaked.txt`,
		// Not cobra.NoArgs, whose error repeats the argument: the key.
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("keys lookup takes no argument: give the key on standard input (on the command line it would stay in shell history)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := cmd.InOrStdin()
			if isTerminal(in) {
				fmt.Fprintln(cmd.ErrOrStderr(), "Paste the key, then press Enter and Ctrl-D:")
			}
			b, err := io.ReadAll(io.LimitReader(in, maxLookupBytes+1))
			if err != nil {
				return fmt.Errorf("read the key from standard input: %w", err)
			}
			key := strings.TrimSpace(string(b))
			switch {
			case len(b) > maxLookupBytes:
				return fmt.Errorf("standard input holds more than a key (over %d bytes)", maxLookupBytes)
			case key == "":
				return fmt.Errorf("standard input is empty: give the key there, e.g. appkeys keys lookup < leaked.txt")
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			k, err := c.LookupKey(cmd.Context(), key)
			if err != nil {
				return fmt.Errorf("look up the key: %w", err)
			}
			if flags.json() {
				return printJSON(cmd.OutOrStdout(), k)
			}
			creator := k.CreatedByEmail
			if creator == "" {
				creator = k.CreatedBy
			}
			return printFields(cmd.OutOrStdout(), [][2]string{
				{"ID", k.ID},
				{"NAME", k.Name},
				{"APP", appLabel(*k)},
				{"PREFIX", k.Prefix},
				{"STATE", stateLabel(*k)},
				{"CREATED BY", creator},
				{"CREATED", fmtTime(k.CreatedAt)},
				{"EXPIRES", fmtTime(k.ExpiresAt)},
				{"LAST USED", fmtLastUsed(k.LastUsedAt)},
			})
		},
	}
}
