package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// usersView is the Users page: the organization's users, and for owners
// and aura owners the controls to add, change and remove them.
type usersView struct {
	Rows []userRow
	// CanManage shows the controls (owners and aura owners); members see
	// the list. The service checks every form again.
	CanManage bool
	// CanMakeOwners offers the owner role (owners only).
	CanMakeOwners bool
	Form          *userForm
	// Created is a user just added, with their token, shown once.
	Created *userCreated
	Roles   []string
}

type userRow struct {
	keyservice.User
	// Orphans is how many keys they created that are not orphaned yet:
	// the keys a removal orphans.
	Orphans int
	Self    bool
}

type userForm struct {
	Open        bool
	Email, Role string
	Error       string
}

type userCreated struct {
	Email, Role, Token string
}

var allRoles = []string{keyservice.RoleMember, keyservice.RoleAuraOwner, keyservice.RoleOwner}

func (c *console) usersPage(w http.ResponseWriter, r *http.Request, req *request) {
	c.renderUsers(w, r, req, http.StatusOK, nil)
}

func (c *console) renderUsers(w http.ResponseWriter, r *http.Request, req *request, status int, edit func(*usersView)) {
	ctx := r.Context()
	users, err := c.svc.ListUsers(ctx, req.caller)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	per, err := c.keysByCreator(ctx, req)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	v := &usersView{CanManage: keyservice.CanRevokeOrphaned(req.user.Role), CanMakeOwners: req.user.Role == keyservice.RoleOwner,
		Form: &userForm{Role: keyservice.RoleMember}, Roles: allRoles}
	for _, u := range users {
		v.Rows = append(v.Rows, userRow{User: u, Orphans: per[u.ID], Self: u.ID == req.user.ID})
	}
	if edit != nil {
		edit(v)
	}
	d := c.data(r, req, "Users")
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}, {Label: "Users"}}
	d.Users = v
	c.render(w, status, "users", d)
}

// manageOnly answers a member's post to a manager's form: the service
// would refuse it too; this says so before anything is read.
func (c *console) manageOnly(w http.ResponseWriter, r *http.Request, req *request) bool {
	if keyservice.CanRevokeOrphaned(req.user.Role) {
		return false
	}
	c.showError(w, r, req, http.StatusForbidden, "Only an Organization Owner or Aura Owner can add, change or remove users.")
	return true
}

func (c *console) createUser(w http.ResponseWriter, r *http.Request, req *request) {
	if c.manageOnly(w, r, req) {
		return
	}
	email, role := strings.TrimSpace(r.PostForm.Get("email")), r.PostForm.Get("role")
	u, token, err := c.svc.CreateUser(r.Context(), req.caller, email, role)
	if err != nil {
		status, msg, ok := formError(err, fmt.Sprintf("A user with email “%s” already exists.", email))
		if !ok && keyservice.KindOf(err) == keyservice.KindForbidden {
			status, msg, ok = http.StatusForbidden, "Only an Organization Owner can add another owner.", true
		}
		if !ok {
			c.fail(w, r, req, err)
			return
		}
		c.renderUsers(w, r, req, status, func(v *usersView) {
			v.Form = &userForm{Open: true, Email: email, Role: role, Error: msg}
		})
		return
	}
	// Rendered here rather than redirected: the token is shown once.
	c.renderUsers(w, r, req, http.StatusCreated, func(v *usersView) {
		v.Created = &userCreated{Email: u.Email, Role: u.Role, Token: token}
	})
}

func (c *console) changeRole(w http.ResponseWriter, r *http.Request, req *request) {
	if c.manageOnly(w, r, req) {
		return
	}
	u, err := c.svc.ChangeUserRole(r.Context(), req.caller, r.PathValue("id"), r.PostForm.Get("role"))
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.setFlash(r.Context(), req.sess, fmt.Sprintf("%s is now %s.", u.Email, roleArticle(u.Role)))
	http.Redirect(w, r, "/users", http.StatusSeeOther)
}

func (c *console) removeUser(w http.ResponseWriter, r *http.Request, req *request) {
	if c.manageOnly(w, r, req) {
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	// The email and the count for the notice; another organization's id
	// is not found here, as by the delete.
	var email string
	users, err := c.svc.ListUsers(ctx, req.caller)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	for _, u := range users {
		if u.ID == id {
			email = u.Email
		}
	}
	if email == "" {
		c.showError(w, r, req, http.StatusNotFound, "That user does not exist: they may have been removed already.")
		return
	}
	per, err := c.keysByCreator(ctx, req)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	n := per[id]
	if err := c.svc.DeleteUser(ctx, req.caller, id); err != nil {
		c.fail(w, r, req, err)
		return
	}
	msg := fmt.Sprintf("Removed %s.", email)
	if n > 0 {
		msg += fmt.Sprintf(" Their %d API %s %s now under Orphaned until an owner revokes them.", n, pluralWord(n, "key", "keys"), pluralWord(n, "is", "are"))
	}
	c.setFlash(ctx, req.sess, msg)
	http.Redirect(w, r, "/users", http.StatusSeeOther)
}

// keysByCreator counts, per user, the listed keys not orphaned yet
// (active and expired): the keys removing that user orphans.
func (c *console) keysByCreator(ctx context.Context, req *request) (map[string]int, error) {
	keys, err := c.svc.ListKeys(ctx, req.caller, "", "")
	if err != nil {
		return nil, err
	}
	per := map[string]int{}
	for _, k := range keys {
		if k.State != keyservice.StateOrphaned {
			per[k.CreatedBy]++
		}
	}
	return per, nil
}

func roleArticle(role string) string {
	if role == keyservice.RoleAuraOwner || role == keyservice.RoleOwner {
		return "an " + roleName(role)
	}
	return "a " + roleName(role)
}
