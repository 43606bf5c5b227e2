package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

func init() { commands = append(commands, newAppsCmd) }

func newAppsCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "apps",
		Short: "Manage Container Apps (Cloud Functions, Dashboard Apps)",
	}
	flags := addClientFlags(group)

	var name, kind string
	create := &cobra.Command{
		Use:   "create --name NAME --kind cloud_function|dashboard_app",
		Short: "Create an app; prints its sidecar's verifier token once",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			app, err := c.CreateApp(cmd.Context(), client.CreateAppRequest{Name: name, Kind: client.AppKind(kind)})
			if err != nil {
				return fmt.Errorf("create app: %w", err)
			}
			return flags.showOnce(cmd, app, tokenOnceNotice("verifier token")+" Give it to the app's sidecar as APPKEYS_VERIFIER_TOKEN.", [][2]string{
				{"ID", app.ID},
				{"NAME", app.Name},
				{"KIND", string(app.Kind)},
				{"CREATED", fmtTime(app.CreatedAt)},
				{"CREATED BY", app.CreatedBy},
				{"VERIFIER TOKEN", app.VerifierToken},
			})
		}),
	}
	create.Flags().StringVar(&name, "name", "", "app name, unique in your organization")
	create.Flags().StringVar(&kind, "kind", "", "cloud_function or dashboard_app")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("kind")

	list := &cobra.Command{
		Use:   "list",
		Short: "List apps with their active and orphaned key counts",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			apps, err := c.ListApps(cmd.Context())
			if err != nil {
				return fmt.Errorf("list apps: %w", err)
			}
			return flags.show(cmd, map[string][]client.App{"apps": orEmpty(apps)},
				func(w io.Writer) error { return appsTable(w, apps) })
		}),
	}

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show one app",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			app, err := c.GetApp(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("get app %s: %w", args[0], err)
			}
			return flags.showFields(cmd, app, [][2]string{
				{"ID", app.ID},
				{"NAME", app.Name},
				{"KIND", string(app.Kind)},
				{"CREATED", fmtTime(app.CreatedAt)},
				{"CREATED BY", app.CreatedBy},
				{"ACTIVE KEYS", strconv.Itoa(app.ActiveKeys)},
				{"ORPHANED KEYS", strconv.Itoa(app.OrphanedKeys)},
			})
		}),
	}

	var yes bool
	del := &cobra.Command{
		Use:   "delete ID [--yes]",
		Short: "Delete an app; its keys become orphaned and stop working",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			id := args[0]
			err := confirm(cmd, yes, "delete app "+id, func() (string, error) {
				// Name what is about to go, so the confirmation means something.
				app, err := c.GetApp(cmd.Context(), id)
				if err != nil {
					return "", fmt.Errorf("delete app %s: %w", id, err)
				}
				return fmt.Sprintf("Delete app %s (%s)? Its %d active keys become orphaned and stop working.",
					cell(app.Name), app.ID, app.ActiveKeys), nil
			})
			if err != nil {
				return err
			}
			if err := c.DeleteApp(cmd.Context(), id); err != nil {
				return fmt.Errorf("delete app %s: %w", id, err)
			}
			flags.done(cmd, "Deleted app %s; its keys are now orphaned.", id)
			return nil
		}),
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")

	group.AddCommand(create, list, get, del)
	group.AddCommand(verifierCommands(flags)...)
	return group
}

func appsTable(w io.Writer, apps []client.App) error {
	t := newTable(w, "ID", "NAME", "KIND", "ACTIVE", "ORPHANED", "CREATED", "CREATED BY")
	for _, a := range apps {
		t.row(a.ID, a.Name, string(a.Kind), strconv.Itoa(a.ActiveKeys), strconv.Itoa(a.OrphanedKeys),
			fmtTime(a.CreatedAt), a.CreatedBy)
	}
	return t.flush()
}

// resolveApp turns --app into an app id: an id ("app_…") as given, anything
// else looked up as an app name.
func resolveApp(ctx context.Context, c *client.Client, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("empty --app")
	}
	if strings.HasPrefix(ref, "app_") {
		return ref, nil
	}
	apps, err := c.ListApps(ctx)
	if err != nil {
		return "", fmt.Errorf("look up app %q: %w", ref, err)
	}
	var found []string
	for _, a := range apps {
		if a.Name == ref {
			found = append(found, a.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no app named %q: pass an app id (app_…) or an existing name", ref)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d apps are named %q: pass the app id instead (%s)", len(found), ref, strings.Join(found, ", "))
}
