package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// secretsView is the Secrets page: the names, never the values, except
// the one value a confirmed Reveal asked for, in that answer only.
type secretsView struct {
	Rows     []secretRow
	Form     *newSecretForm
	Revealed *revealedSecret
}

type secretRow struct {
	keyservice.SecretInfo
	CreatorEmail string
	// KeyName names the key the secret holds, when it is one of the
	// organization's live keys.
	KeyName string
}

type newSecretForm struct {
	Open        bool
	Name, Error string
}

type revealedSecret struct {
	Name, Value string
}

func (c *console) secretsPage(w http.ResponseWriter, r *http.Request, req *request) {
	c.renderSecrets(w, r, req, http.StatusOK, nil)
}

func (c *console) renderSecrets(w http.ResponseWriter, r *http.Request, req *request, status int, edit func(*pageData)) {
	ctx := r.Context()
	secs, err := c.svc.ListSecrets(ctx, req.caller)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	users, err := c.svc.ListUsers(ctx, req.caller)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	keys, err := c.svc.ListKeys(ctx, req.caller, "", "")
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	emails, keyNames := map[string]string{}, map[string]string{}
	for _, u := range users {
		emails[u.ID] = u.Email
	}
	for _, k := range keys {
		keyNames[k.ID] = k.Name
	}
	v := &secretsView{Form: &newSecretForm{}}
	for _, s := range secs {
		v.Rows = append(v.Rows, secretRow{SecretInfo: s, CreatorEmail: emails[s.CreatedBy], KeyName: keyNames[s.KeyID]})
	}
	d := c.data(r, req, "Secrets")
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}, {Label: "Secrets"}}
	d.Secrets = v
	if edit != nil {
		edit(d)
	}
	c.render(w, status, "secrets", d)
}

func (c *console) createSecret(w http.ResponseWriter, r *http.Request, req *request) {
	name, value := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("value")
	if _, err := c.svc.CreateSecret(r.Context(), req.caller, name, value); err != nil {
		status, msg, ok := formError(err, fmt.Sprintf("A secret named “%s” already exists. Choose another name.", name))
		if !ok {
			c.fail(w, r, req, err)
			return
		}
		// The value is not sent back: the user types it again.
		c.renderSecrets(w, r, req, status, func(d *pageData) { d.Secrets.Form = &newSecretForm{Open: true, Name: name, Error: msg} })
		return
	}
	c.setFlash(r.Context(), req.sess, fmt.Sprintf("Created secret “%s”.", name))
	http.Redirect(w, r, "/secrets", http.StatusSeeOther)
}

// revealSecret shows a value, once the user confirmed in the Reveal
// dialog; the read is in the audit log (the service writes it with the
// read). The value is in this answer only: the page is not cached, and a
// reload shows the list again.
func (c *console) revealSecret(w http.ResponseWriter, r *http.Request, req *request) {
	name := r.PostForm.Get("name")
	if r.PostForm.Get("confirm") != "yes" {
		c.renderSecrets(w, r, req, http.StatusUnprocessableEntity, func(d *pageData) {
			d.Error = "Confirm that you want to see the value: revealing a secret is recorded in the audit log."
		})
		return
	}
	_, value, err := c.svc.ReadSecret(r.Context(), req.caller, name)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.renderSecrets(w, r, req, http.StatusOK, func(d *pageData) { d.Secrets.Revealed = &revealedSecret{Name: name, Value: value} })
}

func (c *console) deleteSecret(w http.ResponseWriter, r *http.Request, req *request) {
	name := r.PostForm.Get("name")
	if err := c.svc.DeleteSecret(r.Context(), req.caller, name); err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.setFlash(r.Context(), req.sess, fmt.Sprintf("Deleted secret “%s”.", name))
	http.Redirect(w, r, "/secrets", http.StatusSeeOther)
}
