package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

// newKeysRollCmd is "appkeys keys roll": a new key in place of an old one,
// with an overlap in which both work.
func newKeysRollCmd(flags *clientFlags) *cobra.Command {
	var expires, overlap, saveAs string
	roll := &cobra.Command{
		Use:   "roll ID --expires 90d|2027-01-31 --overlap 24h|0s [--save-as-secret SECRET]",
		Short: "Replace a key with a new one; the old one keeps working for the overlap",
		Long: `Replace an active key with a new key for the same app, with the same name.

--expires is the new key's expiry, as for "keys create". --overlap is how long
the old key keeps working (24h, 90m, 7d), never past its own expiry; 0s revokes
it at once. Secrets that hold the old key get the new one; with
--save-as-secret the new key goes into that secret too, and it is not printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, err := parseExpires(expires, time.Now())
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			k, err := c.RollKey(cmd.Context(), args[0], client.RollKeyRequest{ExpiresAt: exp, Overlap: overlap, SaveAsSecret: saveAs})
			if err != nil {
				return fmt.Errorf("roll key %s: %w", args[0], err)
			}
			if saveAs != "" || len(k.Secrets) > 0 {
				// As for create: a key that went into a secret is never
				// printed, whatever the service sends.
				k.PlainKey = ""
			}
			return printRolledKey(cmd, flags.json(), k)
		},
	}
	roll.Flags().StringVar(&expires, "expires", "", "when the new key expires: 90d, 12h, 2027-01-31 or an RFC 3339 time")
	roll.Flags().StringVar(&overlap, "overlap", "", "how long the old key keeps working: 24h, 90m, 7d; 0s revokes it at once")
	roll.Flags().StringVar(&saveAs, "save-as-secret", "", "store the new key in this secret instead of printing it")
	for _, f := range []string{"expires", "overlap"} {
		_ = roll.MarkFlagRequired(f)
	}
	return roll
}

func printRolledKey(cmd *cobra.Command, asJSON bool, k *client.RolledKey) error {
	prev := k.Previous.ID + " revoked"
	if k.Previous.State != client.StateRevoked {
		prev = k.Previous.ID + " works until " + k.Previous.ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	return printNewKey(cmd, asJSON, k, k.Key, k.PlainKey, k.Secrets, [2]string{"PREVIOUS", prev})
}
