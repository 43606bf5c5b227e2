package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// webhooksView is the Webhooks page: the organization's endpoints, or one
// endpoint with its delivery log (Endpoint set).
type typeChoice struct {
	Name    string
	Checked bool
}

type webhooksView struct {
	Endpoints []keyservice.WebhookEndpoint
	Endpoint  *keyservice.WebhookEndpoint
	Log       []keyservice.WebhookDelivery
	// Types are the event types the create form offers, checked as the
	// form was sent; All is its "All events".
	Types []typeChoice
	All   bool
	// Secret is a signing secret just made (create, rotate), shown in
	// this answer only.
	Secret    string
	SecretFor string
	FormURL   string
	FormDesc  string
	FormError string
}

func (c *console) registerWebhooks(mux *http.ServeMux) {
	mux.Handle("GET /webhooks", c.authed(c.webhooksPage))
	mux.Handle("POST /webhooks", c.authed(c.createWebhook))
	mux.Handle("GET /webhooks/{id}", c.authed(c.webhookPage))
	mux.Handle("POST /webhooks/{id}/test", c.authed(c.testWebhook))
	mux.Handle("POST /webhooks/{id}/enable", c.authed(c.enableWebhook(true)))
	mux.Handle("POST /webhooks/{id}/disable", c.authed(c.enableWebhook(false)))
	mux.Handle("POST /webhooks/{id}/rotate", c.authed(c.rotateWebhook))
	mux.Handle("POST /webhooks/{id}/delete", c.authed(c.deleteWebhook))
	mux.Handle("POST /webhooks/{id}/deliveries/{did}/retry", c.authed(c.retryWebhookDelivery))
}

func webhookURL(id string) string { return "/webhooks/" + url.PathEscape(id) }

func (c *console) renderWebhooks(w http.ResponseWriter, r *http.Request, req *request, status int, v *webhooksView) {
	eps, err := c.svc.ListWebhooks(r.Context(), req.caller)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	v.Endpoints = eps
	v.All = v.All || len(v.Types) == 0 // a new form subscribes to all
	chosen := v.Types
	v.Types = nil
	for _, t := range keyservice.WebhookEventTypes {
		v.Types = append(v.Types, typeChoice{Name: t, Checked: slices.ContainsFunc(chosen, func(c typeChoice) bool { return c.Name == t })})
	}
	d := c.data(r, req, "Webhooks")
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}, {Label: "Webhooks"}}
	d.Webhooks = v
	c.render(w, status, "webhooks", d)
}

func (c *console) webhooksPage(w http.ResponseWriter, r *http.Request, req *request) {
	c.renderWebhooks(w, r, req, http.StatusOK, &webhooksView{})
}

func (c *console) createWebhook(w http.ResponseWriter, r *http.Request, req *request) {
	in := keyservice.WebhookInput{URL: strings.TrimSpace(r.PostForm.Get("url")), Events: r.PostForm["events"], Description: strings.TrimSpace(r.PostForm.Get("description"))}
	if slices.Contains(in.Events, "*") {
		in.Events = []string{"*"}
	}
	e, secret, err := c.svc.CreateWebhook(r.Context(), req.caller, in)
	if err != nil {
		status, msg, ok := formError(err, "")
		if !ok {
			c.fail(w, r, req, err)
			return
		}
		if status == http.StatusConflict {
			msg = sentence(err.Error())
		}
		v := &webhooksView{FormURL: in.URL, FormDesc: in.Description, FormError: msg, All: slices.Contains(in.Events, "*")}
		for _, e := range in.Events {
			v.Types = append(v.Types, typeChoice{Name: e})
		}
		c.renderWebhooks(w, r, req, status, v)
		return
	}
	c.renderWebhooks(w, r, req, http.StatusCreated, &webhooksView{Secret: secret, SecretFor: e.URL})
}

func (c *console) webhookPage(w http.ResponseWriter, r *http.Request, req *request) {
	c.renderWebhook(w, r, req, http.StatusOK, "")
}

// renderWebhook shows one endpoint and its delivery log; secret, when set,
// is its signing secret just rotated, shown this once.
func (c *console) renderWebhook(w http.ResponseWriter, r *http.Request, req *request, status int, secret string) {
	id := r.PathValue("id")
	e, err := c.svc.GetWebhook(r.Context(), req.caller, id)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	log, err := c.svc.ListWebhookDeliveries(r.Context(), req.caller, id)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	d := c.data(r, req, "Webhook")
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}, {Label: "Webhooks", URL: "/webhooks"}, {Label: e.URL}}
	d.Webhooks = &webhooksView{Endpoint: &e, Log: log, Secret: secret, SecretFor: e.URL}
	c.render(w, status, "webhooks", d)
}

func (c *console) testWebhook(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	if err := c.svc.SendTestWebhook(r.Context(), req.caller, id); err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.setFlash(r.Context(), req.sess, "Queued a test event (webhook.test). It shows in the delivery log below.")
	http.Redirect(w, r, webhookURL(id), http.StatusSeeOther)
}

func (c *console) enableWebhook(enable bool) func(http.ResponseWriter, *http.Request, *request) {
	return func(w http.ResponseWriter, r *http.Request, req *request) {
		id := r.PathValue("id")
		e, err := c.svc.UpdateWebhook(r.Context(), req.caller, id, keyservice.WebhookPatch{Enabled: &enable})
		if err != nil {
			c.fail(w, r, req, err)
			return
		}
		msg := fmt.Sprintf("Disabled the webhook to %s: it receives nothing until enabled.", e.URL)
		if enable {
			msg = fmt.Sprintf("Enabled the webhook to %s: its waiting events follow.", e.URL)
		}
		c.setFlash(r.Context(), req.sess, msg)
		http.Redirect(w, r, webhookURL(id), http.StatusSeeOther)
	}
}

func (c *console) rotateWebhook(w http.ResponseWriter, r *http.Request, req *request) {
	secret, _, err := c.svc.RotateWebhookSecret(r.Context(), req.caller, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.renderWebhook(w, r, req, http.StatusOK, secret)
}

func (c *console) deleteWebhook(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	e, err := c.svc.GetWebhook(r.Context(), req.caller, id)
	if err == nil {
		err = c.svc.DeleteWebhook(r.Context(), req.caller, id)
	}
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.setFlash(r.Context(), req.sess, fmt.Sprintf("Deleted the webhook to %s.", e.URL))
	http.Redirect(w, r, "/webhooks", http.StatusSeeOther)
}

func (c *console) retryWebhookDelivery(w http.ResponseWriter, r *http.Request, req *request) {
	id, did := r.PathValue("id"), r.PathValue("did")
	if err := c.svc.RetryWebhookDelivery(r.Context(), req.caller, id, did); err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.setFlash(r.Context(), req.sess, "Queued the delivery again, with its webhook-id.")
	http.Redirect(w, r, webhookURL(id), http.StatusSeeOther)
}
