package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

// verifierCommands are the apps subcommands that roll, list and retire an
// app's verifier tokens.
func verifierCommands(flags *clientFlags) []*cobra.Command {
	var overlap string
	rotate := &cobra.Command{
		Use:   "rotate-verifier APP --overlap 1h",
		Short: "Mint a new verifier token for an app; prints it once",
		Long: `Mint a new verifier token for the app (an id or a name) and print it once.
The token it replaces keeps working for --overlap (at most 7d; 0s stops it
at once), time enough to give every sidecar the new token and reload it.
While a previous token still counts down, a new rotation is refused:
retire that token first (apps retire-verifier).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseOverlap(overlap)
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			appID, err := resolveApp(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			m, err := c.MintVerifierToken(cmd.Context(), appID, d)
			if err != nil {
				return fmt.Errorf("rotate the verifier token of %s: %w", appID, err)
			}
			previous := "-"
			if m.PreviousID != nil && m.PreviousExpiresAt != nil {
				previous = fmt.Sprintf("%s stops working at %s", *m.PreviousID, fmtTime(*m.PreviousExpiresAt))
			}
			notice := tokenOnceNotice("verifier token") + " Give it to the app's sidecars as APPKEYS_VERIFIER_TOKEN and reload them."
			return flags.showOnce(cmd, m, notice, [][2]string{
				{"ID", m.ID},
				{"APP", m.AppID},
				{"PREVIOUS", previous},
				{"VERIFIER TOKEN", m.Token},
			})
		},
	}
	rotate.Flags().StringVar(&overlap, "overlap", "", "how long the current token keeps working: 1h, 90m, 7d, or 0s for at once")
	_ = rotate.MarkFlagRequired("overlap")

	list := &cobra.Command{
		Use:   "verifier-tokens APP",
		Short: "List an app's live verifier tokens, with when each was last used",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			appID, err := resolveApp(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			tokens, err := c.ListVerifierTokens(cmd.Context(), appID)
			if err != nil {
				return fmt.Errorf("list the verifier tokens of %s: %w", appID, err)
			}
			return flags.show(cmd, map[string][]client.VerifierToken{"verifier_tokens": orEmpty(tokens)},
				func(w io.Writer) error { return verifierTable(w, tokens) })
		}),
	}

	var yes bool
	retire := &cobra.Command{
		Use:   "retire-verifier APP TOKEN_ID [--yes]",
		Short: "Stop an app's previous verifier token at once",
		Args:  cobra.ExactArgs(2),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			appID, err := resolveApp(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			id := args[1]
			err = confirm(cmd, yes, "retire verifier token "+id, func() (string, error) {
				return fmt.Sprintf("Retire verifier token %s of %s? A sidecar still using it can verify no more keys.", id, appID), nil
			})
			if err != nil {
				return err
			}
			if err := c.RetireVerifierToken(cmd.Context(), appID, id); err != nil {
				return fmt.Errorf("retire verifier token %s: %w", id, err)
			}
			flags.done(cmd, "Retired verifier token %s of %s.", id, appID)
			return nil
		}),
	}
	retire.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return []*cobra.Command{rotate, list, retire}
}

func verifierTable(w io.Writer, tokens []client.VerifierToken) error {
	t := newTable(w, "ID", "PREFIX", "CREATED", "EXPIRES", "LAST USED")
	for _, v := range tokens {
		expires := "current"
		if v.ExpiresAt != nil {
			expires = fmtTime(*v.ExpiresAt)
		}
		t.row(v.ID, v.Prefix+"…", fmtTime(v.CreatedAt), expires, fmtLastUsed(v.LastUsedAt))
	}
	return t.flush()
}

// parseOverlap reads --overlap: a Go duration (1h, 90m, 0s) or whole days
// (7d). The service enforces the bounds.
func parseOverlap(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && isDigits(days) {
		n, err := strconv.Atoi(days)
		if err == nil && n <= 366 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	return 0, fmt.Errorf("invalid --overlap %q: use a duration such as 1h, 90m, 7d, or 0s to stop the old token at once", s)
}
