package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// limitsForm is the Edit limits dialog of a key's page: the limits as
// they are, or as typed when the server sends the form back.
type limitsForm struct {
	Open                                bool
	RateRequests, RatePer, AllowedCIDRs string
	Error                               string
}

// limitsFormOf fills the dialog with a key's limits.
func limitsFormOf(l keyservice.Limits) *limitsForm {
	f := &limitsForm{RatePer: "1s", AllowedCIDRs: strings.Join(l.AllowedCIDRs, ", ")}
	if r := l.RateLimit; r != nil {
		f.RateRequests = strconv.Itoa(r.Requests)
		f.RatePer = map[time.Duration]string{time.Second: "1s", time.Minute: "1m", time.Hour: "1h"}[r.Per]
	}
	return f
}

// editLimits answers the Edit limits dialog, POST /keys/{id}/limits: it
// sets both limits at once (empty fields remove them) through the service
// call that serves PATCH /v1/keys/{id}, so the same roles may, the change
// is audited and reaches the sidecars by the feed. A bad value shows the
// dialog again, as typed, in the create dialog's words.
func (c *console) editLimits(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	rate, per, cidrs := r.PostForm.Get("rate_requests"), r.PostForm.Get("rate_per"), r.PostForm.Get("allowed_cidrs")
	again := func(status int, msg string) {
		d, err := c.keyData(r, req, id, "")
		if err != nil {
			c.fail(w, r, req, err)
			return
		}
		if d.Key.Edit == nil { // no longer active: say why, no dialog
			d.Error = msg
		} else {
			d.Key.Edit = &limitsForm{Open: true, RateRequests: rate, RatePer: per, AllowedCIDRs: cidrs, Error: msg}
		}
		c.render(w, status, "key", d)
	}
	limits, msg := limitsFromForm(rate, per, cidrs)
	if msg != "" {
		again(http.StatusUnprocessableEntity, msg)
		return
	}
	k, err := c.svc.UpdateKey(r.Context(), req.caller, id, keyservice.KeyUpdate{
		SetRateLimit: true, RateLimit: limits.RateLimit, SetAllowedCIDRs: true, AllowedCIDRs: limits.AllowedCIDRs})
	if err != nil {
		switch keyservice.KindOf(err) {
		case keyservice.KindInvalid:
			_, msg, _ := formError(err, "")
			again(http.StatusUnprocessableEntity, msg)
		case keyservice.KindConflict: // orphaned or expired
			var de *keyservice.Error
			errors.As(err, &de)
			again(http.StatusConflict, sentence(de.Message))
		default:
			c.fail(w, r, req, err)
		}
		return
	}
	c.setFlash(r.Context(), req.sess, fmt.Sprintf("Changed the limits of API key “%s”. Sidecars apply them within a second.", k.Name))
	http.Redirect(w, r, "/keys/"+k.ID, http.StatusSeeOther)
}
