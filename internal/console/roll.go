package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// rollForm is the Roll dialog: its overlap choices, and, when the server
// sends it back with an error, the key it rolls and what the user chose.
type rollForm struct {
	Open    bool
	KeyID   string
	Name    string
	Prefix  string
	Until   string // the key's own expiry, as the dialog words it
	Expires string
	Overlap string
	Error   string
	Choices []overlapChoice
}

type overlapChoice struct {
	Value, Label string
}

// overlapChoices are the overlaps the dialog offers, in ParseOverlap's
// spelling. The server takes any overlap the domain accepts: the choices
// are a convenience, not a bound.
var overlapChoices = []overlapChoice{
	{"0s", "Stop the old key now"}, {"1h", "1 hour"}, {"24h", "24 hours"}, {"7d", "7 days"},
}

// rollKey replaces a key by a new one through the Roll dialog. The new
// key is shown once, as at creation; when secrets held the old key, they
// hold the new one now and the key is not shown at all.
func (c *console) rollKey(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	// Where to go back to comes as an app id and a tab, never as a URL,
	// so the form cannot be turned into an open redirect.
	appID, tab := r.PostForm.Get("app"), r.PostForm.Get("tab")
	expires, overlap := r.PostForm.Get("expires"), strings.TrimSpace(r.PostForm.Get("overlap"))
	again := func(status int, msg string) {
		c.rollAgain(w, r, req, appID, tab, status, func(d *pageData) {
			f := &d.Keys.Roll
			f.Open, f.KeyID, f.Expires, f.Overlap, f.Error = true, id, expires, overlap, msg
			if k, ok := d.Keys.byID[id]; ok {
				f.Name, f.Prefix, f.Until = k.Name, k.Prefix, formatDateTime(&k.ExpiresAt)
			} else {
				// A key this view no longer lists (revoked meanwhile):
				// the words the dialog showed, as it posted them.
				f.Name, f.Prefix, f.Until = formText(r, "name"), formText(r, "prefix"), formText(r, "until")
			}
		})
	}
	at, msg := expiryFromDate(expires, c.svc.Now())
	var d time.Duration
	if msg == "" && overlap == "" {
		msg = "Choose how long the old key keeps working."
	} else if msg == "" {
		var err error
		if d, err = keyservice.ParseOverlap(overlap); err != nil {
			msg = sentence(err.Error())
		}
	}
	if msg != "" {
		again(http.StatusUnprocessableEntity, msg)
		return
	}
	res, err := c.svc.RollKey(r.Context(), req.caller, id, keyservice.RollKeyRequest{ExpiresAt: at, Overlap: d})
	if err != nil {
		switch keyservice.KindOf(err) {
		case keyservice.KindNotFound:
			// Said outside the dialog, naming nothing: the id may be
			// another organization's.
			c.rollAgain(w, r, req, appID, tab, http.StatusNotFound, func(d *pageData) {
				d.Error = "That API key no longer exists: it may have been revoked."
			})
		case keyservice.KindConflict:
			// Not active any more: rolled, revoked, orphaned or expired
			// meanwhile. The domain's words say which.
			again(http.StatusConflict, sentence(err.Error()))
		case keyservice.KindInvalid:
			status, msg, _ := formError(err, "")
			again(status, msg)
		default:
			c.fail(w, r, req, err)
		}
		return
	}
	if res.Key.AppID != appID {
		appID = "" // a form that named another app: the service's view
	}
	old := oldKeySentence(res.Previous)
	if res.Plain == "" {
		c.setFlash(r.Context(), req.sess, fmt.Sprintf("Rolled API key “%s”: %s the new key. %s", res.Key.Name, secretsHold(res.Secrets), old))
		http.Redirect(w, r, keysURL(appID, ""), http.StatusSeeOther)
		return
	}
	nk := &newKey{Plain: res.Plain, Name: res.Key.Name, CloseURL: keysURL(appID, ""), OldKey: old}
	c.showNewKey(w, r, req, appID, nk, res.Key)
}

// rollAgain renders the keys view the Roll form came from, edited, with
// status. A view that cannot be shown (an app gone, or another
// organization's named by a forged form) falls back to the service's
// view, so the answer still says what happened to the roll.
func (c *console) rollAgain(w http.ResponseWriter, r *http.Request, req *request, appID, tab string, status int, edit func(*pageData)) {
	d, err := c.keysData(r, req, appID, tab)
	if err != nil && appID != "" && keyservice.KindOf(err) == keyservice.KindNotFound {
		d, err = c.keysData(r, req, "", tab)
	}
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	edit(d)
	c.render(w, status, "keys", d)
}

// formText is a short text field the page filled itself, to show again;
// anything longer than a page would fill is dropped.
func formText(r *http.Request, name string) string {
	if v := strings.TrimSpace(r.PostForm.Get(name)); len(v) <= keyservice.MaxNameLen*4 {
		return v
	}
	return ""
}

// oldKeySentence says what became of a rolled key.
func oldKeySentence(k keyservice.Key) string {
	if k.State == keyservice.StateRevoked {
		return fmt.Sprintf("The old key (%s…) was revoked: it no longer works.", k.Prefix)
	}
	return fmt.Sprintf("The old key (%s…) keeps working until %s: move its clients to the new key before then.", k.Prefix, formatDateTime(&k.ExpiresAt))
}

// secretsHold names the secrets that received a rolled key.
func secretsHold(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "“" + n + "”"
	}
	if len(quoted) == 1 {
		return "secret " + quoted[0] + " now holds"
	}
	return "secrets " + strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1] + " now hold"
}
