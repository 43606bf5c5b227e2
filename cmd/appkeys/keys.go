package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

func init() { commands = append(commands, newKeysCmd) }

// keyOnceNotice goes with a key printed in clear.
const keyOnceNotice = "This key is shown once and will not be shown again: store it now (or create it with --save-as-secret)."

func newKeysCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "keys",
		Short: "Create, list, roll and revoke the API keys of your apps",
	}
	flags := addClientFlags(group)

	var app, name, expires, saveAs string
	var limits limitFlags
	create := &cobra.Command{
		Use:   "create --app APP --name NAME --expires 30d|12h|2027-01-31 [--save-as-secret SECRET] [--rate-limit 5/s] [--allowed-cidrs 10.0.0.0/8,…]",
		Short: "Create a key for an app; prints it once, or saves it into a secret",
		Long: `Create a key for an app (--app takes an app id or name).

--expires is a number of days (30d) or hours (12h) from now, a date
(2027-01-31: the key lives through that whole day, until midnight UTC), or an
RFC 3339 time. With --save-as-secret the key goes into that secret and is not
printed; read it back with "appkeys secrets get".

--rate-limit (5/s, 100/m, 1000/h) and --allowed-cidrs (10.0.0.0/8,192.168.1.7)
are optional limits the app's sidecars enforce; change them later with
"appkeys keys update".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exp, err := parseExpires(expires, time.Now())
			if err != nil {
				return err
			}
			req := client.CreateKeyRequest{Name: name, ExpiresAt: exp, SaveAsSecret: saveAs}
			if cmd.Flags().Changed("rate-limit") {
				if req.RateLimit, err = parseRateLimit(limits.rate); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("allowed-cidrs") {
				if req.AllowedCIDRs, err = parseCIDRs(limits.cidrs); err != nil {
					return err
				}
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			appID, err := resolveApp(cmd.Context(), c, app)
			if err != nil {
				return err
			}
			k, err := c.CreateKey(cmd.Context(), appID, req)
			if err != nil {
				return fmt.Errorf("create key: %w", err)
			}
			if saveAs != "" {
				// Promised to the user: with a secret, the key is never printed,
				// whatever the service sends.
				k.PlainKey = ""
			}
			var saved []string
			if k.SecretName != "" {
				saved = []string{k.SecretName}
			}
			var more [][2]string
			if k.RateLimit != nil || len(k.AllowedCIDRs) > 0 {
				more = append(more, [2]string{"LIMITS", limitsLabel(k.Key)})
			}
			return printNewKey(cmd, flags.json(), k, k.Key, k.PlainKey, saved, more...)
		},
	}
	create.Flags().StringVar(&app, "app", "", "the app: its id (app_…) or its name")
	create.Flags().StringVar(&name, "name", "", "a name for the key")
	create.Flags().StringVar(&expires, "expires", "", "when the key expires: 30d, 12h, 2027-01-31 or an RFC 3339 time")
	create.Flags().StringVar(&saveAs, "save-as-secret", "", "store the key in this secret instead of printing it")
	limits.add(create, false)
	for _, f := range []string{"app", "name", "expires"} {
		_ = create.MarkFlagRequired(f)
	}

	var listApp, state, within string
	var leaked bool
	list := &cobra.Command{
		Use:   "list [--app APP] [--state active|orphaned|expired] [--expiring-within 7d] [--leaked]",
		Short: "List keys, of one app or of the whole organization",
		Long: `List keys, of one app or of the whole organization.

--expiring-within lists only the active keys that expire within that long
from now (7d, 36h): the ones to roll or replace before their clients get
401s.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st := client.KeyState(state)
			switch st {
			case client.StateAny, client.StateActive, client.StateOrphaned, client.StateExpired:
			default:
				return fmt.Errorf("invalid --state %q: use active, orphaned or expired", state)
			}
			var window time.Duration
			if cmd.Flags().Changed("expiring-within") {
				var err error
				if window, err = parseWithin(within); err != nil {
					return err
				}
				if st != client.StateAny && st != client.StateActive {
					return fmt.Errorf("--expiring-within lists active keys: drop --state %s", state)
				}
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			q := client.KeyQuery{State: st, ExpiringWithin: window}
			if leaked {
				q.Leaked = &leaked
			}
			if listApp != "" {
				if q.AppID, err = resolveApp(cmd.Context(), c, listApp); err != nil {
					return err
				}
			}
			keys, err := c.ListKeysWhere(cmd.Context(), q)
			switch {
			case err != nil && q.AppID != "":
				return fmt.Errorf("list keys of app %s: %w", q.AppID, err)
			case err != nil:
				return fmt.Errorf("list keys: %w", err)
			}
			if flags.json() {
				return printJSON(cmd.OutOrStdout(), map[string][]client.Key{"keys": orEmpty(keys)})
			}
			return keysTable(cmd.OutOrStdout(), keys)
		},
	}
	list.Flags().StringVar(&listApp, "app", "", "only this app's keys: its id (app_…) or its name")
	list.Flags().StringVar(&state, "state", "", "only keys in this state: active, orphaned or expired (default: all but revoked)")
	list.Flags().StringVar(&within, "expiring-within", "", "only active keys that expire within this long: 7d, 36h")
	list.Flags().BoolVar(&leaked, "leaked", false, "only keys a leak report named (they still work under --leak-action notify): revoke them")

	var yes bool
	revoke := &cobra.Command{
		Use:   "revoke ID [--yes]",
		Short: "Revoke a key for good; requests with it are refused at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			c, err := flags.client()
			if err != nil {
				return err
			}
			err = confirm(cmd, yes, "revoke key "+id, func() (string, error) {
				return fmt.Sprintf("Revoke key %s? Requests using it will be refused, and it cannot be restored.", id), nil
			})
			if err != nil {
				return err
			}
			if err := c.RevokeKey(cmd.Context(), id); err != nil {
				return fmt.Errorf("revoke key %s: %w", id, err)
			}
			if !flags.json() {
				fmt.Fprintf(cmd.OutOrStdout(), "Revoked key %s.\n", id)
			}
			return nil
		},
	}
	revoke.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")

	group.AddCommand(create, list, newKeysRollCmd(flags), revoke, newKeysLookupCmd(flags), newKeysUsageCmd(flags), newKeysUpdateCmd(flags))
	return group
}

// printNewKey prints a key just made, created or rolled (answer is the
// whole API answer, k its key): as JSON, the notice beside it on standard
// error, or as fields (more after the key's own), then the key alone on
// its line, so it can be copied whole, or the secrets it went to instead.
func printNewKey(cmd *cobra.Command, asJSON bool, answer any, k client.Key, plain string, secrets []string, more ...[2]string) error {
	out := cmd.OutOrStdout()
	if asJSON {
		// stdout stays one JSON document; the notice goes beside it.
		if plain != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), keyOnceNotice)
		}
		return printJSON(out, answer)
	}
	fields := append([][2]string{
		{"ID", k.ID},
		{"NAME", k.Name},
		{"APP", appLabel(k)},
		{"PREFIX", k.Prefix},
		{"STATE", stateLabel(k)},
		{"EXPIRES", fmtTime(k.ExpiresAt)},
	}, more...)
	if err := printFields(out, fields); err != nil {
		return err
	}
	var err error
	switch {
	case len(secrets) > 0:
		names := make([]string, len(secrets))
		for i, n := range secrets {
			names[i] = cell(n)
		}
		_, err = fmt.Fprintf(out, "\nThe key was saved into secret %s and is not shown; read it with: appkeys secrets get %s\n",
			strings.Join(names, ", "), names[0])
	case plain != "":
		_, err = fmt.Fprintf(out, "\n%s\n\n%s\n", plain, keyOnceNotice)
	}
	return err
}

func keysTable(w io.Writer, keys []client.Key) error {
	t := newTable(w, "ID", "NAME", "APP", "PREFIX", "STATE", "EXPIRES", "LAST USED", "CREATED BY", "LIMITS")
	for _, k := range keys {
		// People recognize an e-mail; the id stays for a deleted creator.
		creator := k.CreatedByEmail
		if creator == "" {
			creator = k.CreatedBy
		}
		t.row(k.ID, k.Name, appLabel(k), k.Prefix, stateLabel(k), fmtTime(k.ExpiresAt), fmtLastUsed(k.LastUsedAt), creator, limitsLabel(k))
	}
	return t.flush()
}

// stateLabel shows why beside the state: an orphaned key's reason, as the
// console's Orphaned tab does, "revoked (leaked)" for a key a leak report
// revoked, "(leaked)" after a key reported leaked and still working, and
// the keys a rolled key is linked to.
func stateLabel(k client.Key) string {
	var notes []string
	for _, w := range []string{string(k.OrphanReason), k.RevokeReason} {
		if w != "" {
			notes = append(notes, w)
		}
	}
	if k.LeakedAt != nil && k.RevokeReason == "" {
		notes = append(notes, "leaked")
	}
	if k.RolledFrom != "" {
		notes = append(notes, "rolled from "+k.RolledFrom)
	}
	if k.RolledTo != "" {
		notes = append(notes, "rolled to "+k.RolledTo)
	}
	if len(notes) == 0 {
		return string(k.State)
	}
	return fmt.Sprintf("%s (%s)", k.State, strings.Join(notes, ", "))
}

func appLabel(k client.Key) string {
	if k.AppName == "" {
		return k.AppID
	}
	return k.AppName + " (" + k.AppID + ")"
}
