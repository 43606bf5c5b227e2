package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// auditPageSize is how many entries a page of the Audit log shows, unless
// ?per= says fewer (tests use pages of one).
const auditPageSize = 50

// auditView is the Audit log page: one page of entries, newest first, the
// filters that chose them, and the way to the next page.
type auditView struct {
	Rows    []auditRow
	Filter  auditFilter
	Actions []string
	Actors  []keyservice.User
	Apps    []keyservice.App
	// Older is the next page's URL, "" on the last; Newest goes back to
	// the first page when this is not it.
	Older, Newest string
}

// auditFilter is the filter form as the user sent it.
type auditFilter struct {
	Action, Actor, App, From, To string
	// Key keeps the entries about one key (a key page's "All of its
	// history" link).
	Key string
}

// auditRow is an entry, with links to what it names.
type auditRow struct {
	keyservice.AuditRecord
	ActorLabel, ActorURL   string
	TargetLabel, TargetURL string
}

func (c *console) auditPage(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	q := r.URL.Query()
	f := auditFilter{Action: q.Get("action"), Actor: q.Get("actor"), App: q.Get("app"), From: q.Get("from"), To: q.Get("to"), Key: q.Get("key")}
	query := keyservice.AuditQuery{Action: f.Action, Actor: f.Actor, AppID: f.App, KeyID: f.Key, Limit: auditPageSize}
	bad := func(msg string) { c.showError(w, r, req, http.StatusBadRequest, msg) }
	var err error
	if f.From != "" {
		if query.Since, err = time.Parse("2006-01-02", f.From); err != nil {
			bad("The From date is not a date. Use the date picker.")
			return
		}
	}
	if f.To != "" {
		to, err := time.Parse("2006-01-02", f.To)
		if err != nil {
			bad("The To date is not a date. Use the date picker.")
			return
		}
		query.Until = to.AddDate(0, 0, 1) // To is a whole day, included
	}
	if v := q.Get("before"); v != "" {
		if query.Before, err = strconv.ParseInt(v, 10, 64); err != nil || query.Before < 1 {
			bad("That page of the audit log does not exist. Start from the newest entries.")
			return
		}
	}
	if v := q.Get("per"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > auditPageSize {
			bad("A page holds 1 to 50 entries.")
			return
		}
		query.Limit = n
	}
	// One more than a page tells whether an older page exists.
	query.Limit++
	recs, err := c.svc.ListAuditWhere(ctx, req.caller, query)
	if keyservice.KindOf(err) == keyservice.KindForbidden {
		c.showError(w, r, req, http.StatusForbidden, "Only an Organization Owner or Aura Owner can read the audit log.")
		return
	}
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	v := &auditView{Filter: f}
	if v.Actions, err = c.svc.AuditActions(ctx, req.caller); err == nil {
		if v.Actors, err = c.svc.ListUsers(ctx, req.caller); err == nil {
			v.Apps, err = c.svc.ListApps(ctx, req.caller)
		}
	}
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	emails := map[string]string{}
	for _, u := range v.Actors {
		emails[u.ID] = u.Email
	}
	apps := map[string]string{}
	for _, a := range v.Apps {
		apps[a.ID] = a.Name
	}
	more := len(recs) == query.Limit
	if more {
		recs = recs[:len(recs)-1]
	}
	for _, a := range recs {
		v.Rows = append(v.Rows, auditRowOf(a, emails, apps))
	}
	page := url.Values{}
	for k, val := range map[string]string{"action": f.Action, "actor": f.Actor, "app": f.App, "from": f.From, "to": f.To, "key": f.Key, "per": q.Get("per")} {
		if val != "" {
			page.Set(k, val)
		}
	}
	if more && len(recs) > 0 {
		next := url.Values{}
		for k, val := range page {
			next[k] = val
		}
		next.Set("before", strconv.FormatInt(recs[len(recs)-1].ID, 10))
		v.Older = "/audit?" + next.Encode()
	}
	if query.Before > 0 {
		v.Newest = "/audit?" + page.Encode()
	}
	d := c.data(r, req, "Audit log")
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}, {Label: "Audit log"}}
	d.Audit = v
	c.render(w, http.StatusOK, "audit", d)
}

// auditRowOf names an entry's actor and target, with a link to each: keys
// to their detail page, apps to theirs, users and secrets to their row.
func auditRowOf(a keyservice.AuditRecord, emails, apps map[string]string) auditRow {
	row := auditRow{AuditRecord: a, ActorLabel: a.Actor, TargetLabel: a.Target}
	switch {
	case strings.HasPrefix(a.Actor, "usr_"):
		row.ActorURL = "/users#" + a.Actor
		if e, ok := emails[a.Actor]; ok {
			row.ActorLabel = e
		} else {
			row.ActorLabel = a.Actor + " (removed)"
		}
	case a.Actor == "admin":
		row.ActorLabel = "Platform admin"
	case a.Actor == "system":
		row.ActorLabel = "appkeys"
	}
	switch {
	case a.Target == "":
	case strings.HasPrefix(a.Target, "key_"):
		row.TargetURL = "/keys/" + url.PathEscape(a.Target)
	case strings.HasPrefix(a.Target, "app_"):
		row.TargetURL = "/apps/" + url.PathEscape(a.Target)
		if n, ok := apps[a.Target]; ok {
			row.TargetLabel = n
		}
	case strings.HasPrefix(a.Target, "usr_"):
		row.TargetURL = "/users#" + a.Target
		if e, ok := emails[a.Target]; ok {
			row.TargetLabel = e
		}
	case strings.HasPrefix(a.Action, "secret."):
		row.TargetURL = "/secrets#secret-" + a.Target
	}
	return row
}
