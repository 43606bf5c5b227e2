package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/appkeys/appkeys/internal/client"
)

func init() { commands = append(commands, newWebhooksCmd) }

func newWebhooksCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "webhooks",
		Short: "Manage signed webhooks (Standard Webhooks) that tell your endpoints of key events",
		Long: `Webhooks tell an endpoint of your organization's key events: key.created,
key.revoked, key.orphaned, key.rolled, key.leaked, key.expiring (7 days and
1 day before expiry), key.expired, app.deleted and user.deleted. Each
delivery is signed as the Standard Webhooks specification says
(webhook-id, webhook-timestamp, webhook-signature), retried for 24 hours,
and the endpoint is disabled after that. Owners and aura owners only.`,
	}
	flags := addClientFlags(group)

	var url, description string
	var events []string
	create := &cobra.Command{
		Use:   "create --endpoint URL [--events key.revoked,key.leaked | --events '*'] [--description TEXT]",
		Short: "Register an endpoint; prints its signing secret once",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			h, err := c.CreateWebhook(cmd.Context(), client.CreateWebhookRequest{URL: url, Events: events, Description: description})
			if err != nil {
				return fmt.Errorf("create webhook: %w", err)
			}
			return flags.showOnce(cmd, h, tokenOnceNotice("signing secret")+" Give it to the receiver to check signatures with.",
				append(webhookFields(h), [2]string{"SECRET", h.Secret}))
		}),
	}
	create.Flags().StringVar(&url, "endpoint", "", "the endpoint's http(s) URL (--url is the key service's)")
	create.Flags().StringSliceVar(&events, "events", []string{"*"}, "event types to send (comma-separated or repeated), or * for all")
	create.Flags().StringVar(&description, "description", "", "what the endpoint is for")
	_ = create.MarkFlagRequired("endpoint")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the endpoints",
		Args:  cobra.NoArgs,
		RunE: flags.run(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			hs, err := c.ListWebhooks(cmd.Context())
			if err != nil {
				return fmt.Errorf("list webhooks: %w", err)
			}
			return flags.show(cmd, map[string][]client.Webhook{"webhooks": orEmpty(hs)}, func(w io.Writer) error {
				t := newTable(w, "ID", "URL", "EVENTS", "STATE", "DESCRIPTION")
				for _, h := range hs {
					t.row(h.ID, h.URL, strings.Join(h.Events, ","), webhookState(h), h.Description)
				}
				return t.flush()
			})
		}),
	}

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show an endpoint, and why it was disabled if it was",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			h, err := c.GetWebhook(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("show webhook %s: %w", args[0], err)
			}
			return flags.showFields(cmd, h, webhookFields(h))
		}),
	}

	var enable, disable bool
	var newURL, newDescription string
	var newEvents []string
	update := &cobra.Command{
		Use:   "update ID [--enable | --disable] [--endpoint URL] [--events …] [--description TEXT]",
		Short: "Enable, disable or change an endpoint",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			var in client.UpdateWebhookRequest
			if enable && disable {
				return fmt.Errorf("--enable and --disable: give one")
			}
			if enable || disable {
				in.Enabled = &enable
			}
			if cmd.Flags().Changed("endpoint") {
				in.URL = &newURL
			}
			if cmd.Flags().Changed("description") {
				in.Description = &newDescription
			}
			if cmd.Flags().Changed("events") {
				in.Events = newEvents
			}
			h, err := c.UpdateWebhook(cmd.Context(), args[0], in)
			if err != nil {
				return fmt.Errorf("update webhook %s: %w", args[0], err)
			}
			return flags.showFields(cmd, h, webhookFields(h))
		}),
	}
	update.Flags().BoolVar(&enable, "enable", false, "enable the endpoint (its waiting messages are sent again)")
	update.Flags().BoolVar(&disable, "disable", false, "disable the endpoint")
	update.Flags().StringVar(&newURL, "endpoint", "", "a new endpoint URL")
	update.Flags().StringSliceVar(&newEvents, "events", nil, "new event types, or *")
	update.Flags().StringVar(&newDescription, "description", "", "a new description")

	var yes bool
	del := &cobra.Command{
		Use:   "delete ID [--yes]",
		Short: "Delete an endpoint and its undelivered messages",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			id := args[0]
			err := confirm(cmd, yes, "delete webhook "+id, func() (string, error) {
				h, err := c.GetWebhook(cmd.Context(), id)
				if err != nil {
					return "", fmt.Errorf("delete webhook %s: %w", id, err)
				}
				return fmt.Sprintf("Delete webhook %s (%s)? Its undelivered messages are dropped.", h.ID, cell(h.URL)), nil
			})
			if err != nil {
				return err
			}
			if err := c.DeleteWebhook(cmd.Context(), id); err != nil {
				return fmt.Errorf("delete webhook %s: %w", id, err)
			}
			flags.done(cmd, "Deleted webhook %s.", id)
			return nil
		}),
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")

	rotate := &cobra.Command{
		Use:   "rotate-secret ID",
		Short: "Give an endpoint a new signing secret; both sign for 24 hours",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			r, err := c.RotateWebhookSecret(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("rotate the secret of webhook %s: %w", args[0], err)
			}
			return flags.showOnce(cmd, r, tokenOnceNotice("new signing secret")+" Deliveries carry both signatures until the old secret stops.", [][2]string{
				{"SECRET", r.Secret},
				{"OLD SECRET STOPS", fmtTime(r.PreviousSecretExpiresAt)},
			})
		}),
	}

	test := &cobra.Command{
		Use:   "test ID",
		Short: "Send a webhook.test event to an endpoint",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			if err := c.SendTestWebhook(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("test webhook %s: %w", args[0], err)
			}
			flags.done(cmd, "Queued a test event for webhook %s; see: appkeys webhooks deliveries %s", args[0], args[0])
			return nil
		}),
	}

	deliveries := &cobra.Command{
		Use:   "deliveries ID",
		Short: "An endpoint's delivery log, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ds, err := c.ListWebhookDeliveries(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("deliveries of webhook %s: %w", args[0], err)
			}
			return flags.show(cmd, map[string][]client.WebhookDelivery{"deliveries": orEmpty(ds)}, func(w io.Writer) error {
				t := newTable(w, "ID", "TYPE", "STATUS", "ATTEMPTS", "LAST CODE", "LATENCY", "LAST ERROR", "CREATED")
				for _, d := range ds {
					code := "-"
					if d.LastResponseCode != 0 {
						code = strconv.Itoa(d.LastResponseCode)
					}
					t.row(d.ID, d.Type, d.Status, strconv.Itoa(d.Attempts), code, strconv.FormatFloat(d.LatencyMS, 'f', 1, 64)+" ms", d.LastError, fmtTime(d.CreatedAt))
				}
				return t.flush()
			})
		}),
	}

	retry := &cobra.Command{
		Use:   "retry ID DELIVERY_ID",
		Short: "Send a delivery again, now, with its webhook-id",
		Args:  cobra.ExactArgs(2),
		RunE: flags.run(func(cmd *cobra.Command, args []string, c *client.Client) error {
			if err := c.RetryWebhookDelivery(cmd.Context(), args[0], args[1]); err != nil {
				return fmt.Errorf("retry delivery %s of webhook %s: %w", args[1], args[0], err)
			}
			flags.done(cmd, "Queued delivery %s again.", args[1])
			return nil
		}),
	}

	group.AddCommand(create, list, show, update, del, rotate, test, deliveries, retry)
	return group
}

func webhookState(h client.Webhook) string {
	if h.Enabled {
		return "enabled"
	}
	return "disabled"
}

func webhookFields(h *client.Webhook) [][2]string {
	f := [][2]string{
		{"ID", h.ID},
		{"URL", h.URL},
		{"EVENTS", strings.Join(h.Events, ",")},
		{"STATE", webhookState(*h)},
		{"DESCRIPTION", h.Description},
		{"CREATED", fmtTime(h.CreatedAt)},
		{"CREATED BY", h.CreatedBy},
	}
	if h.DisabledReason != "" {
		f = append(f, [2]string{"DISABLED BECAUSE", h.DisabledReason})
	}
	return f
}
