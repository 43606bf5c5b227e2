package console

import (
	"net/http"
	"strings"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// lookupView is the Find a key box's answer: the key found, or why not.
// The key the user pasted is never written back into the page.
type lookupView struct {
	Key     *keyRow
	Message string
}

// lookupKey answers the Find a key box of the Container Service page:
// which of the organization's keys a key found somewhere is (owners and
// aura owners). The key comes in the form's body, never in a URL.
func (c *console) lookupKey(w http.ResponseWriter, r *http.Request, req *request) {
	k, err := c.svc.LookupKey(r.Context(), req.caller, strings.TrimSpace(r.PostForm.Get("key")))
	status, view := http.StatusOK, &lookupView{}
	switch keyservice.KindOf(err) {
	case 0:
		if err != nil {
			c.fail(w, r, req, err)
			return
		}
		view.Key = &keyRow{Key: k, AppLive: k.OrphanReason != keyservice.OrphanAppDeleted}
	case keyservice.KindNotFound:
		status, view.Message = http.StatusNotFound, "No API key of your organization matches what you entered. A key of another organization, or one that never existed, is not found."
	case keyservice.KindInvalid:
		status, view.Message = http.StatusUnprocessableEntity, "That is not an appkeys API key: it starts with cak_ and is 53 characters long. Paste the whole key."
	case keyservice.KindForbidden:
		status, view.Message = http.StatusForbidden, "Only an Organization Owner or Aura Owner can look up keys."
	default:
		c.fail(w, r, req, err)
		return
	}
	c.renderHome(w, r, req, status, func(d *pageData) { d.Lookup = view })
}
