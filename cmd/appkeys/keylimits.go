package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

// ratePeriods are the periods --rate-limit takes, by every spelling, in the
// API's.
var ratePeriods = map[string]string{
	"s": "1s", "1s": "1s", "sec": "1s", "second": "1s",
	"m": "1m", "1m": "1m", "min": "1m", "minute": "1m",
	"h": "1h", "1h": "1h", "hour": "1h",
}

const rateLimitUsage = "use REQUESTS/PERIOD, such as 5/s, 100/m or 1000/h"

// parseRateLimit reads --rate-limit: 5/s, 100/m, 1000/h (or 5/1s,
// 5/second). The service checks the bounds and says them.
func parseRateLimit(s string) (*client.RateLimit, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	requests, err := strconv.Atoi(strings.TrimSpace(n))
	period, known := ratePeriods[strings.ToLower(strings.TrimSpace(per))]
	if !ok || err != nil || requests < 1 || !known {
		return nil, fmt.Errorf("invalid --rate-limit %q: %s", s, rateLimitUsage)
	}
	return &client.RateLimit{Requests: requests, Per: period}, nil
}

// parseCIDRs reads --allowed-cidrs: networks separated by commas (spaces
// around them are fine). The service checks each and says which is wrong.
func parseCIDRs(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("invalid --allowed-cidrs %q: give networks such as 10.0.0.0/8,192.168.1.7, or none", s)
	}
	return out, nil
}

// limitFlags are --rate-limit and --allowed-cidrs, as create and update
// take them.
type limitFlags struct {
	rate, cidrs string
}

func (l *limitFlags) add(cmd *cobra.Command, withNone bool) {
	none := ""
	if withNone {
		none = "; none removes it"
	}
	cmd.Flags().StringVar(&l.rate, "rate-limit", "", "at most this many requests per second, minute or hour, per sidecar: 5/s, 100/m, 1000/h"+none)
	cmd.Flags().StringVar(&l.cidrs, "allowed-cidrs", "", "client networks the key may be used from, comma-separated: 10.0.0.0/8,192.168.1.7"+none)
}

// limitsLabel shows a key's limits in a table cell: "5/1s from 10.0.0.0/8",
// "-" for none; past two networks, how many more.
func limitsLabel(k client.Key) string {
	var parts []string
	if k.RateLimit != nil {
		parts = append(parts, k.RateLimit.String())
	}
	if n := len(k.AllowedCIDRs); n > 0 {
		shown := k.AllowedCIDRs[:min(n, 2)]
		from := "from " + strings.Join(shown, " ")
		if n > 2 {
			from += fmt.Sprintf(" +%d more", n-2)
		}
		parts = append(parts, from)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func newKeysUpdateCmd(flags *clientFlags) *cobra.Command {
	var lf limitFlags
	cmd := &cobra.Command{
		Use:   "update ID [--rate-limit 5/s|none] [--allowed-cidrs 10.0.0.0/8,…|none]",
		Short: "Change a key's rate limit or allowed networks; sidecars apply it within a second",
		Long: `Change a key's limits. A flag left out leaves that limit as it is; "none"
removes it.

--rate-limit is counted by each sidecar on its own: with N replicas of an
app, a client may get up to N times the limit, unless the sidecars set
limit_share N. --allowed-cidrs takes CIDR ranges or single addresses; the
sidecar compares them with the client address Caddy determines, which
honours trusted_proxies.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var up client.UpdateKeyRequest
			set := false
			if cmd.Flags().Changed("rate-limit") {
				set = true
				if strings.EqualFold(lf.rate, "none") {
					up.ClearRateLimit = true
				} else {
					rl, err := parseRateLimit(lf.rate)
					if err != nil {
						return err
					}
					up.RateLimit = rl
				}
			}
			if cmd.Flags().Changed("allowed-cidrs") {
				set = true
				if strings.EqualFold(strings.TrimSpace(lf.cidrs), "none") {
					up.ClearAllowedCIDRs = true
				} else {
					cidrs, err := parseCIDRs(lf.cidrs)
					if err != nil {
						return err
					}
					up.AllowedCIDRs = cidrs
				}
			}
			if !set {
				return fmt.Errorf("nothing to change: give --rate-limit, --allowed-cidrs or both")
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			k, err := c.UpdateKey(cmd.Context(), args[0], up)
			if err != nil {
				return fmt.Errorf("update key %s: %w", args[0], err)
			}
			if flags.json() {
				return printJSON(cmd.OutOrStdout(), k)
			}
			return printFields(cmd.OutOrStdout(), [][2]string{
				{"ID", k.ID},
				{"NAME", k.Name},
				{"APP", appLabel(*k)},
				{"STATE", stateLabel(*k)},
				{"LIMITS", limitsLabel(*k)},
			})
		},
	}
	lf.add(cmd, true)
	return cmd
}
