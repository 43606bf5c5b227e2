package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// maxUsageSince is the longest --since the key service answers (its
// usage window's bound, 90 days).
const maxUsageSince = 90 * 24 * time.Hour

func newKeysUsageCmd(flags *clientFlags) *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "usage ID [--since 24h|7d]",
		Short: "Show a key's requests per hour, as its app's sidecars reported them",
		Long: `Show a key's requests per hour over the last --since (24h by default, at most
90d): how many its app's sidecars let through (ALLOWED) and refused for the
key's limits (RATE LIMITED, FORBIDDEN), then the totals. Sidecars report every
10 seconds; hours with no requests are listed as zeros.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseDays(since)
			if err != nil || d <= 0 || d > maxUsageSince {
				return fmt.Errorf("invalid --since %q: use a duration from 1h to 90d, such as 24h or 7d", since)
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			now := time.Now()
			u, err := c.KeyUsage(cmd.Context(), args[0], now.Add(-d), now)
			if err != nil {
				return fmt.Errorf("key usage of %s: %w", args[0], err)
			}
			if flags.json() {
				return printJSON(cmd.OutOrStdout(), u)
			}
			t := newTable(cmd.OutOrStdout(), "HOUR (UTC)", "ALLOWED", "RATE LIMITED", "FORBIDDEN")
			var a, r, f int64
			for _, p := range u.Points {
				t.row(p.Hour.UTC().Format("2006-01-02 15:04"), strconv.FormatInt(p.Allowed, 10), strconv.FormatInt(p.RateLimited, 10), strconv.FormatInt(p.Forbidden, 10))
				a, r, f = a+p.Allowed, r+p.RateLimited, f+p.Forbidden
			}
			t.row("TOTAL", strconv.FormatInt(a, 10), strconv.FormatInt(r, 10), strconv.FormatInt(f, 10))
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&since, "since", "24h", "how far back: a Go duration (24h) or days (7d), at most 90d")
	return cmd
}
