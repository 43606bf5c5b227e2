package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// pageData is everything a template may show. One struct for every page
// keeps the layout simple; each page fills its own part.
type pageData struct {
	Title  string
	User   *keyservice.User
	Org    keyservice.Org
	CSRF   string
	Flash  string
	Error  string
	Status int
	Crumbs []crumb

	// login
	LoginMessage string
	LoginCSRF    string
	// OIDCName names the provider of "Sign in with …" ("" without OIDC);
	// TokenLogin shows the token form; SignedIn is the page after a
	// sign-in with OIDC, which moves on to the console by itself.
	OIDCName   string
	TokenLogin bool
	SignedIn   bool

	// Container Service
	Apps       []appRow
	TotalKeys  int
	AppForm    *appForm
	AppCreated *appCreated
	// CanLookup shows the Find a key box (owners and aura owners); Lookup
	// is its answer, after a search.
	CanLookup bool
	Lookup    *lookupView

	// App instance and keys views
	App  *appRow
	Keys *keysView
	// Key is a key's detail page.
	Key *keyView

	// Users, Secrets and Audit log pages
	Users   *usersView
	Secrets *secretsView
	Audit   *auditView

	// Webhooks page (owners and aura owners)
	Webhooks *webhooksView
}

type crumb struct {
	Label string
	URL   string // empty for the current page
}

// appRow is an app with the number of keys listed for it (active, expired
// and orphaned: what its View API Keys shows).
type appRow struct {
	keyservice.App
	Keys int
	// Leaked counts its keys reported leaked and still working
	// (--leak-action notify): the app page warns of them.
	Leaked int
}

type appForm struct {
	Open        bool
	Name, Kind  string
	Error       string
	ErrorIsName bool
}

// appCreated shows a new app's verifier token, once.
type appCreated struct {
	Name, Kind, ID, VerifierToken string
}

// keysView is the API keys view of one app (App set) or of the whole
// Container Service.
type keysView struct {
	App           *appRow
	Tab           string // "active" or "orphaned"
	Rows          []keyRow
	ActiveCount   int
	OrphanedCount int
	// ExpiringCount is the keys the service marks ExpiringSoon, due
	// within ExpiringDays.
	ExpiringCount int
	ExpiringDays  int
	// CanRevokeOrphaned is false for members: the Orphaned tab says why.
	CanRevokeOrphaned bool
	// Unlisted says the keys could not be read (the store away): the page
	// shows only its dialog, a Save As Secret to try again.
	Unlisted bool
	Create   keyForm
	Roll     rollForm
	NewKey   *newKey
	Secret   *secretForm
	// byID is every key of the view, whatever the tab: the Roll dialog
	// sent back names its key from it.
	byID map[string]keyservice.Key
}

// URL returns the view's address for a tab.
func (v *keysView) URL(tab string) string {
	id := ""
	if v.App != nil {
		id = v.App.ID
	}
	return keysURL(id, tab)
}

type keyRow struct {
	keyservice.Key
	// AppLive tells whether the App column may link to the app.
	AppLive bool
	// Rollable offers Roll: an active key not rolled already.
	Rollable bool
	// ToListed and FromListed tell whether the keys this one was rolled
	// to and from are rows of the same table, so their ids can link there.
	ToListed, FromListed bool
	// Requests is the key's requests of every outcome in the last 24
	// hours, as the sidecars reported them; -1 when they could not be read.
	Requests int64
}

// keyForm is the Create API Key dialog: its quick choices, and what the
// user typed when the server sends it back with an error.
type keyForm struct {
	Open    bool
	Name    string
	Expires string
	// The optional limits as typed, for the form shown again.
	RateRequests, RatePer, AllowedCIDRs string
	Error                               string
	Min                                 string
	Max                                 string
	Quick                               []quickChoice
}

type quickChoice struct {
	Days int
	Date string
}

// newKey is a key just created: shown once, in this response only.
type newKey struct {
	Plain string
	Name  string
	// Flow and Sealed make the Save As Secret form: the flow id names its
	// action, and Sealed is the key sealed for this session and flow (see
	// keyservice.SealNewKey). Empty when the key could not be sealed: then
	// the dialog offers no Save As Secret.
	Flow   string
	Sealed string
	// CloseURL is where Close goes: the keys view, without the key.
	CloseURL string
	// OldKey, for a key made by a roll, says until when the key it
	// replaced works; empty for a created key.
	OldKey string
}

// secretForm is the New Secret dialog when the server sends it back (a
// name taken, the store failing), with the same sealed key, so the user can
// try again.
type secretForm struct {
	Flow     string
	Sealed   string
	Name     string
	Error    string
	CloseURL string
}

func (c *console) data(r *http.Request, req *request, title string) *pageData {
	d := &pageData{Title: title}
	if req != nil {
		u := req.user
		d.User, d.Org, d.CSRF = &u, req.org, req.sess.CSRF
		d.Flash = c.popFlash(r.Context(), &req.sess)
	}
	return d
}

// keysURL is the keys view of an app, or of the service when appID is "".
func keysURL(appID, tab string) string {
	u := "/keys"
	if appID != "" {
		u = "/apps/" + url.PathEscape(appID) + "/keys"
	}
	if tab == keyservice.StateOrphaned {
		u += "?tab=orphaned"
	}
	return u
}

func kindName(kind string) string {
	switch kind {
	case keyservice.KindCloudFunction:
		return "Cloud Function"
	case keyservice.KindDashboardApp:
		return "Dashboard App"
	}
	return kind
}

func roleName(role string) string {
	switch role {
	case keyservice.RoleOwner:
		return "Organization Owner"
	case keyservice.RoleAuraOwner:
		return "Aura Owner"
	case keyservice.RoleMember:
		return "Member"
	}
	return role
}

func orphanReason(reason string) string {
	switch reason {
	case keyservice.OrphanAppDeleted:
		return "App deleted"
	case keyservice.OrphanCreatorDeleted:
		return "Creator deleted"
	}
	return reason
}

// Dates are shown in UTC, the zone the date picker's dates mean too.
func formatDate(t time.Time) string { return t.UTC().Format("Jan 2, 2006") }

func formatDateTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("Jan 2, 2006 15:04 UTC")
}

// day is a date in the form the date picker uses.
func day(t time.Time) string { return t.UTC().Format("2006-01-02") }
