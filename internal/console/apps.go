package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/appkeys/appkeys/internal/keyservice"
)

func (c *console) loadApps(ctx context.Context, req *request) ([]appRow, int, error) {
	apps, err := c.svc.ListApps(ctx, req.caller)
	if err != nil {
		return nil, 0, err
	}
	keys, err := c.svc.ListKeys(ctx, req.caller, "", "")
	if err != nil {
		return nil, 0, err
	}
	per := map[string]int{}
	for _, k := range keys {
		per[k.AppID]++
	}
	rows := make([]appRow, len(apps))
	for i, a := range apps {
		rows[i] = appRow{App: a, Keys: per[a.ID]}
	}
	return rows, len(keys), nil
}

func (c *console) home(w http.ResponseWriter, r *http.Request, req *request) {
	c.renderHome(w, r, req, http.StatusOK, nil)
}

func (c *console) renderHome(w http.ResponseWriter, r *http.Request, req *request, status int, edit func(*pageData)) {
	apps, total, err := c.loadApps(r.Context(), req)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	d := c.data(r, req, "Container Service")
	d.Apps, d.TotalKeys = apps, total
	d.AppForm = &appForm{Kind: keyservice.KindCloudFunction}
	d.Crumbs = []crumb{{Label: "Container Service"}}
	d.CanLookup = keyservice.CanRevokeOrphaned(req.user.Role)
	if edit != nil {
		edit(d)
	}
	c.render(w, status, "home", d)
}

func (c *console) createApp(w http.ResponseWriter, r *http.Request, req *request) {
	name, kind := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("kind")
	created, err := c.svc.CreateApp(r.Context(), req.caller, name, kind)
	if err != nil {
		status, msg, ok := formError(err, fmt.Sprintf("An app named “%s” already exists. Choose another name.", name))
		if !ok {
			c.fail(w, r, req, err)
			return
		}
		c.renderHome(w, r, req, status, func(d *pageData) {
			d.AppForm = &appForm{Open: true, Name: name, Kind: kind, Error: msg}
		})
		return
	}
	// Rendered here rather than redirected: the verifier token is shown once.
	c.renderHome(w, r, req, http.StatusCreated, func(d *pageData) {
		a := created.App
		d.AppCreated = &appCreated{Name: a.Name, Kind: a.Kind, ID: a.ID, VerifierToken: created.VerifierToken}
	})
}

func (c *console) appPage(w http.ResponseWriter, r *http.Request, req *request) {
	app, err := c.loadApp(r.Context(), req, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	d := c.data(r, req, app.Name)
	d.App = app
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}, {Label: app.Name}}
	c.render(w, http.StatusOK, "app", d)
}

func (c *console) loadApp(ctx context.Context, req *request, id string) (*appRow, error) {
	app, err := c.svc.GetApp(ctx, req.caller, id)
	if err != nil {
		return nil, err
	}
	keys, err := c.svc.ListKeys(ctx, req.caller, id, "")
	if err != nil {
		return nil, err
	}
	row := &appRow{App: app, Keys: len(keys)}
	for _, k := range keys {
		if k.LeakedAt != nil {
			row.Leaked++
		}
	}
	return row, nil
}

func (c *console) deleteApp(w http.ResponseWriter, r *http.Request, req *request) {
	app, err := c.loadApp(r.Context(), req, r.PathValue("id"))
	if err == nil {
		err = c.svc.DeleteApp(r.Context(), req.caller, app.ID)
	}
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	msg := fmt.Sprintf("Deleted %s “%s”.", kindName(app.Kind), app.Name)
	if app.Keys > 0 {
		msg += fmt.Sprintf(" Its %d API %s stopped working and %s now under Orphaned until an owner revokes them.",
			app.Keys, pluralWord(app.Keys, "key", "keys"), pluralWord(app.Keys, "is", "are"))
	}
	c.setFlash(r.Context(), req.sess, msg)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
