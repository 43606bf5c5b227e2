package console

import (
	"net/http"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// keyView is a key's detail page: its fields, its usage chart, its
// history and the Edit limits dialog.
type keyView struct {
	Key     keyservice.Key
	AppLive bool
	Chart   usageChart
	// Unread says the usage could not be read (the store away): the page
	// still shows the key.
	Unread  bool
	History keyHistory
	// Edit is the Edit limits dialog; nil when the key's limits cannot
	// change (not active).
	Edit *limitsForm
}

// usageRanges are the chart's choices: the last 24 hours (the default) or
// the last 7 days, hour by hour.
var usageRanges = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

// keyPage shows GET /keys/{id}: a key of the caller's organization (any
// other is not found, as one that does not exist) with its requests per
// hour, allowed vs limited.
func (c *console) keyPage(w http.ResponseWriter, r *http.Request, req *request) {
	d, err := c.keyData(r, req, r.PathValue("id"), r.URL.Query().Get("range"))
	if err != nil {
		c.fail(w, r, req, err)
		return
	}
	c.render(w, http.StatusOK, "key", d)
}

// keyData loads a key's page; rng is the chart's period.
func (c *console) keyData(r *http.Request, req *request, id, rng string) (*pageData, error) {
	ctx := r.Context()
	k, err := c.svc.GetKey(ctx, req.caller, id)
	if err != nil {
		return nil, err
	}
	span, ok := usageRanges[rng]
	if !ok {
		rng, span = "24h", usageRanges["24h"]
	}
	// The window ends with the current hour, so the newest bar fills
	// as the sidecars report.
	to := c.svc.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	v := &keyView{Key: k, AppLive: k.OrphanReason != keyservice.OrphanAppDeleted}
	pts, err := c.svc.KeyUsage(ctx, req.caller, k.ID, to.Add(-span), to)
	if err != nil {
		c.log.Warn("console: read key usage", "key", k.ID, "err", err)
		v.Unread = true
	}
	v.Chart = newUsageChart(rng, pts)
	v.History = c.keyHistory(r, req, k.ID)
	if k.State == keyservice.StateActive {
		v.Edit = limitsFormOf(k.Limits)
	}
	d := c.data(r, req, "API Key · "+k.Name)
	d.Crumbs = []crumb{{Label: "Container Service", URL: "/"}}
	if v.AppLive {
		d.Crumbs = append(d.Crumbs, crumb{Label: k.AppName, URL: "/apps/" + k.AppID}, crumb{Label: "API Keys", URL: "/apps/" + k.AppID + "/keys"})
	}
	d.Crumbs = append(d.Crumbs, crumb{Label: k.Name})
	d.Key = v
	return d, nil
}
