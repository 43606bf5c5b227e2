package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/keyserver"
)

func init() { commands = append(commands, newGenTokenCmd) }

// newGenTokenCmd mints a bootstrap token the way the service mints its own,
// so an operator who fixes the tokens in the environment (replicas, scripted
// set-ups) never has to invent one.
func newGenTokenCmd() *cobra.Command {
	kinds := map[string]keyserver.TokenKind{"admin": keyserver.AdminToken, "owner": keyserver.OwnerToken}
	return &cobra.Command{
		Use:   "gen-token admin|owner",
		Short: "Print a new random token for APPKEYS_ADMIN_TOKEN (admin) or APPKEYS_BOOTSTRAP_TOKEN (owner)",
		Long: `Print a new random token, 256 bits from the system's secure random source,
in the shape the key service mints: aka_… for the platform admin
(APPKEYS_ADMIN_TOKEN), aku_… for the first organization's owner
(APPKEYS_BOOTSTRAP_TOKEN). It calls no service and writes nothing else.`,
		Example:   "  kubectl create secret generic appkeys-keyservice \\\n    --from-literal=APPKEYS_ADMIN_TOKEN=\"$(appkeys gen-token admin)\" \\\n    --from-literal=APPKEYS_BOOTSTRAP_TOKEN=\"$(appkeys gen-token owner)\" …",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"admin", "owner"},
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := kinds[args[0]]
			if !ok {
				return fmt.Errorf("unknown token kind %q: use admin or owner", args[0])
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), kind.New())
			return err
		},
	}
}
