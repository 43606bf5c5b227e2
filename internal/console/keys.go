package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

func (c *console) keysPage(w http.ResponseWriter, r *http.Request, req *request) {
	c.renderKeys(w, r, req, r.PathValue("id"), r.URL.Query().Get("tab"), http.StatusOK, nil)
}

// renderKeys shows the keys view of an app (appID set) or of the service.
func (c *console) renderKeys(w http.ResponseWriter, r *http.Request, req *request, appID, tab string, status int, edit func(*pageData)) {
	d, err := c.keysData(r, req, appID, tab)
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	if edit != nil {
		edit(d)
	}
	c.render(w, status, "keys", d)
}

// keysData loads the keys view of an app (appID set) or of the service.
func (c *console) keysData(r *http.Request, req *request, appID, tab string) (*pageData, error) {
	ctx := r.Context()
	if tab != keyservice.StateOrphaned {
		tab = keyservice.StateActive
	}
	v := &keysView{Tab: tab, CanRevokeOrphaned: keyservice.CanRevokeOrphaned(req.user.Role),
		ExpiringDays: int(keyservice.ExpiringSoonWithin / (24 * time.Hour))}
	d := c.data(r, req, "API Keys")
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}}
	if appID != "" {
		app, err := c.loadApp(ctx, req, appID)
		if err != nil {
			return nil, err
		}
		v.App = app
		d.Title = "API Keys · " + app.Name
		d.Crumbs = append(d.Crumbs, crumb{Label: app.Name, URL: "/apps/" + app.ID})
	}
	d.Crumbs = append(d.Crumbs, crumb{Label: "API Keys"})
	keys, err := c.svc.ListKeys(ctx, req.caller, appID, "")
	if err != nil {
		return nil, err
	}
	v.byID = make(map[string]keyservice.Key, len(keys))
	listed := map[string]bool{}
	for _, k := range keys {
		v.byID[k.ID] = k
		if k.State == keyservice.StateOrphaned {
			v.OrphanedCount++
		} else {
			v.ActiveCount++
		}
		if k.ExpiringSoon {
			v.ExpiringCount++
		}
		// Expired keys stay under Active, marked, as they are not orphans.
		if (k.State == keyservice.StateOrphaned) == (tab == keyservice.StateOrphaned) {
			listed[k.ID] = true
			v.Rows = append(v.Rows, keyRow{Key: k, AppLive: k.OrphanReason != keyservice.OrphanAppDeleted,
				Rollable: k.State == keyservice.StateActive && k.RolledTo == ""})
		}
	}
	recent, err := c.svc.RecentRequests(ctx, req.caller)
	if err != nil {
		c.log.Warn("console: read recent requests", "err", err)
	}
	for i := range v.Rows {
		v.Rows[i].ToListed, v.Rows[i].FromListed = listed[v.Rows[i].RolledTo], listed[v.Rows[i].RolledFrom]
		if v.Rows[i].Requests = recent[v.Rows[i].ID]; err != nil {
			v.Rows[i].Requests = -1
		}
	}
	v.Create = newKeyForm(c.svc.Now())
	v.Roll = rollForm{Expires: v.Create.Expires, Choices: overlapChoices}
	d.Keys = v
	return d, nil
}

// newKeyForm offers dates from tomorrow to a year ahead, in UTC.
func newKeyForm(now time.Time) keyForm {
	f := keyForm{Min: day(now.AddDate(0, 0, 1)), Max: day(now.AddDate(0, 0, 365))}
	for _, n := range []int{30, 90, 365} {
		f.Quick = append(f.Quick, quickChoice{Days: n, Date: day(now.AddDate(0, 0, n))})
	}
	f.Expires = f.Quick[0].Date
	return f
}

// formError turns a service error about what the user typed into a
// status and a sentence for the form, taken being the sentence for a name
// already in use; ok is false for any other error.
func formError(err error, taken string) (status int, msg string, ok bool) {
	de, isDomain := err.(*keyservice.Error)
	if !isDomain {
		return 0, "", false
	}
	switch de.Kind {
	case keyservice.KindInvalid:
		m := strings.NewReplacer("expires_at", "the expiration date", "rate_limit.requests", "the rate limit",
			"rate_limit.per", "the rate limit's period", "allowed_cidrs: ", "allowed networks: ", "allowed_cidrs", "allowed networks").Replace(de.Message)
		return http.StatusUnprocessableEntity, sentence(m), true
	case keyservice.KindConflict:
		return http.StatusConflict, taken, true
	}
	return 0, "", false
}

// expiryFromDate reads the date picker: the key expires on that day at the
// current time of day (UTC), so "365 days" is exactly 365 days.
func expiryFromDate(value string, now time.Time) (time.Time, string) {
	if value == "" {
		return time.Time{}, "Choose an expiration date."
	}
	d, err := time.Parse("2006-01-02", value)
	if err != nil {
		return time.Time{}, "The expiration date is not a date. Use the date picker or a quick choice."
	}
	now = now.UTC()
	if !d.After(time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)) {
		return time.Time{}, "The expiration date must be after today."
	}
	return time.Date(d.Year(), d.Month(), d.Day(), now.Hour(), now.Minute(), now.Second(), 0, time.UTC), ""
}

func (c *console) createKey(w http.ResponseWriter, r *http.Request, req *request) {
	appID := r.PathValue("id")
	name, expires := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("expires")
	rate, per, cidrs := r.PostForm.Get("rate_requests"), r.PostForm.Get("rate_per"), r.PostForm.Get("allowed_cidrs")
	again := func(status int, msg string) {
		c.renderKeys(w, r, req, appID, keyservice.StateActive, status, func(d *pageData) {
			f := &d.Keys.Create
			f.Open, f.Name, f.Expires, f.Error = true, name, expires, msg
			f.RateRequests, f.RatePer, f.AllowedCIDRs = rate, per, cidrs
		})
	}
	at, msg := expiryFromDate(expires, c.svc.Now())
	if msg != "" {
		again(http.StatusUnprocessableEntity, msg)
		return
	}
	limits, msg := limitsFromForm(rate, per, cidrs)
	if msg != "" {
		again(http.StatusUnprocessableEntity, msg)
		return
	}
	created, err := c.svc.CreateKey(r.Context(), req.caller, appID, keyservice.CreateKeyRequest{Name: name, ExpiresAt: at, Limits: limits})
	if err != nil {
		status, msg, ok := formError(err, fmt.Sprintf("An API key named “%s” already exists for this app. Choose another name.", name))
		if !ok {
			c.fail(w, r, req, err)
			return
		}
		again(status, msg)
		return
	}
	nk := &newKey{Plain: created.Plain, Name: created.Key.Name, CloseURL: keysURL(created.Key.AppID, "")}
	c.showNewKey(w, r, req, appID, nk, created.Key)
}

// showNewKey answers a create or a roll with the keys view of appID and
// the new key's dialog. The key is shown in this response only and kept
// nowhere on the server. For Save As Secret the page carries it too,
// sealed for this session and flow (see keyservice.SealNewKey), with its
// id, so that a later roll updates that secret. If it cannot be sealed, or
// the view cannot be listed, the key is still shown: it exists now, and
// this answer is the only one that can show it.
func (c *console) showNewKey(w http.ResponseWriter, r *http.Request, req *request, appID string, nk *newKey, k keyservice.Key) {
	flow := randomToken()
	sealed, err := c.svc.SealNewKey(req.sess.ConsoleSession, flow, keyservice.NewKey{Plain: nk.Plain, AppID: k.AppID, KeyName: k.Name, KeyID: k.ID})
	if err != nil {
		c.log.Warn("console: seal the new key for Save As Secret", "err", err)
	} else {
		nk.Flow, nk.Sealed = flow, sealed
	}
	d, err := c.keysData(r, req, appID, keyservice.StateActive)
	if err != nil {
		c.log.Warn("console: list keys under a new key", "err", err)
		d = c.bareKeysPage(r, req)
	}
	d.Keys.NewKey = nk
	c.render(w, http.StatusCreated, "keys", d)
}

// bareKeysPage is the keys view when the keys cannot be listed (the store
// away): it holds only a dialog that must not be lost.
func (c *console) bareKeysPage(r *http.Request, req *request) *pageData {
	d := c.data(r, req, "API Keys")
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}, {Label: "API Keys"}}
	d.Keys = &keysView{Tab: keyservice.StateActive, Unlisted: true}
	return d
}

// saveAsSecret stores a key just created as a secret. The key comes back
// with the form, sealed: it opens only for this session and flow, within
// its few minutes. The server holds nothing in between, so a form replayed
// in that time can at worst save the same key again, under another name,
// or be told the name is taken (the user's own key, through their own
// session and CSRF token: no harm). A form from another session or flow, an
// altered one or one past its time is refused.
func (c *console) saveAsSecret(w http.ResponseWriter, r *http.Request, req *request) {
	flow, sealed := r.PathValue("flow"), r.PostForm.Get("new_key")
	k, err := c.svc.OpenNewKey(req.sess.ConsoleSession, flow, sealed)
	if errors.Is(err, keyservice.ErrNewKeyExpired) {
		c.showError(w, r, req, http.StatusGone, sentence(err.Error())+" Create another key to save it as a secret.")
		return
	}
	if err != nil { // another session's, another flow's, or altered: 403
		c.fail(w, r, req, err)
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if _, err := c.svc.SaveNewKey(r.Context(), req.caller, name, k); err != nil {
		c.retrySecret(w, r, req, flow, sealed, name, k, err)
		return
	}
	c.setFlash(r.Context(), req.sess, fmt.Sprintf("Saved API key “%s” as secret “%s”.", k.KeyName, name))
	http.Redirect(w, r, keysURL(k.AppID, ""), http.StatusSeeOther)
}

// retrySecret answers a Save As Secret whose create failed, whatever the
// cause (a name taken or invalid, the store away): the New Secret dialog
// again, with the error and the same sealed key, so the user can change
// the name or simply try again. The key is in the form, not on the server,
// so nothing is lost; were the keys view to fail to load too (the store
// still away), the dialog is shown on its own rather than not at all.
func (c *console) retrySecret(w http.ResponseWriter, r *http.Request, req *request, flow, sealed, name string, k keyservice.NewKey, err error) {
	status, msg, ok := formError(err, fmt.Sprintf("A secret named “%s” already exists. Choose another name.", name))
	var de *keyservice.Error
	switch {
	case ok:
	case keyservice.KindOf(err) == keyservice.KindUnavailable:
		status, msg = statusOf(w, keyservice.KindUnavailable), "The key store cannot be reached right now, so the secret was not created. Try again in a moment."
	case errors.As(err, &de):
		status, msg = statusOf(w, de.Kind), sentence(de.Message)
	default:
		id := w.Header().Get("X-Request-Id")
		c.log.Error("console: save a new key as a secret", "request_id", id, "err", err)
		status, msg = http.StatusInternalServerError, fmt.Sprintf("Something went wrong on our side, so the secret was not created. Try again; if it persists, quote request %s.", id)
	}
	form := &secretForm{Flow: flow, Sealed: sealed, Name: name, Error: msg, CloseURL: keysURL(k.AppID, "")}
	d, lerr := c.keysData(r, req, k.AppID, keyservice.StateActive)
	if lerr != nil {
		c.log.Warn("console: list keys under a Save As Secret retry", "err", lerr)
		d = c.bareKeysPage(r, req)
	}
	d.Keys.Secret = form
	c.render(w, status, "keys", d)
}

func (c *console) revokeKey(w http.ResponseWriter, r *http.Request, req *request) {
	// Where to go back to comes as an app id and a tab, never as a URL,
	// so the form cannot be turned into an open redirect.
	appID, tab := r.PostForm.Get("app"), r.PostForm.Get("tab")
	back := func(status int, msg string) {
		c.renderKeys(w, r, req, appID, tab, status, func(d *pageData) { d.Error = msg })
	}
	if r.PostForm.Get("agree") != "yes" {
		back(http.StatusUnprocessableEntity, "Check the agreement to revoke the key.")
		return
	}
	if err := c.svc.RevokeKey(r.Context(), req.caller, r.PathValue("id")); err != nil {
		switch keyservice.KindOf(err) {
		case keyservice.KindForbidden:
			back(http.StatusForbidden, "Only an Organization Owner or Aura Owner can revoke an orphaned key. Ask one of them to revoke it.")
		case keyservice.KindNotFound:
			back(http.StatusNotFound, "That API key no longer exists: it may have been revoked already.")
		default:
			c.fail(w, r, req, err)
		}
		return
	}
	msg := "Revoked the API key. It no longer works."
	if name := strings.TrimSpace(r.PostForm.Get("name")); name != "" && len(name) <= keyservice.MaxNameLen*4 {
		msg = fmt.Sprintf("Revoked API key “%s”. It no longer works.", name)
	}
	c.setFlash(r.Context(), req.sess, msg)
	http.Redirect(w, r, keysURL(appID, tab), http.StatusSeeOther)
}
