package httpapi_test

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

const day = 24 * time.Hour

// expiringWorld is an organization whose keys try every way to be wrongly
// called "expiring soon": a key of another organization, a revoked, an
// orphaned and an expired key, all due within days, beside the two keys
// that are (soonA on app A, soonB on app B) and one that is not (late).
type expiringWorld struct {
	*world
	soonA, soonB, late           *client.CreatedKey
	revoked, orphaned, expired   *client.CreatedKey
	otherOwner                   *client.Client
	otherTok                     string
	otherApp                     *client.CreatedApp
	otherSoon                    *client.CreatedKey
	expiringInOrg, expiringTotal int
}

func newExpiringWorld(t *testing.T, opts ...servicetest.Option) *expiringWorld {
	w := &expiringWorld{world: newWorld(t, opts...)}
	key := func(by *client.Client, appID, name string, in time.Duration) *client.CreatedKey {
		t.Helper()
		k, err := by.CreateKey(ctx(t), appID, client.CreateKeyRequest{Name: name, ExpiresAt: w.clock.Now().Add(in)})
		must(t, err)
		return k
	}
	w.expired = key(w.owner, w.appA.ID, "expired", time.Hour)
	w.clock.Advance(2 * time.Hour) // expired is now past its expiry
	w.soonA = key(w.owner, w.appA.ID, "soon-a", 3*day)
	w.soonB = key(w.owner, w.appB.ID, "soon-b", 7*day-time.Hour)
	w.late = key(w.owner, w.appA.ID, "late", 30*day)
	w.revoked = key(w.owner, w.appA.ID, "revoked", 3*day)
	must(t, w.owner.RevokeKey(ctx(t), w.revoked.ID))
	w.orphaned = key(w.member, w.appA.ID, "orphaned", 3*day)
	must(t, w.owner.DeleteUser(ctx(t), w.memberID)) // its creator is gone

	org2, err := w.client(w.svc.AdminToken).CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Other", OwnerEmail: "boss@other.example"})
	must(t, err)
	w.otherTok = org2.Owner.Token
	w.otherOwner = w.client(w.otherTok)
	w.otherApp = w.createApp(w.otherOwner, "app-a")
	w.otherSoon = key(w.otherOwner, w.otherApp.ID, "soon-a", 2*day)

	w.expiringInOrg, w.expiringTotal = 2, 3
	return w
}

// listIDs lists keys through the raw API and returns their ids, sorted.
func (w *world) listIDs(token, path string) []string {
	w.t.Helper()
	var out struct{ Keys []client.Key }
	w.do("GET", path, token, nil).WantStatus(http.StatusOK).Into(&out)
	ids := make([]string, 0, len(out.Keys))
	for _, k := range out.Keys {
		ids = append(ids, k.ID)
	}
	sort.Strings(ids)
	return ids
}

func sorted(ids ...string) []string {
	out := append([]string(nil), ids...)
	sort.Strings(out)
	return out
}

// A bad expiring_within is the caller's mistake: 400 with a message that
// names the parameter, never a 500 and never a silently empty or full list.
func TestExpiringWithinRefusesBadValues(t *testing.T) {
	w := newWorld(t)
	w.createKey(w.owner, w.appA.ID, "k")
	bad := []string{
		"abc", "7", "d", "-7d", "-1h", "0", "0d", "0s", "1.5d", "7D", "+7d", " 7d", "7d ", "7 d", "7d7d",
		"P7D", "1e3h", "0x7d", "١d", // Arabic-Indic digit
		"99999999999999999999d", "9223372036854775807d", "2562048h", "9999999999h", "366000d", "367d", "8785h",
		strings.Repeat("9", 4000) + "d",
	}
	for _, v := range bad {
		for _, path := range []string{"/v1/keys", "/v1/apps/" + w.appA.ID + "/keys"} {
			r := w.do("GET", path+"?expiring_within="+url.QueryEscape(v), w.ownerTok, nil)
			r.WantError(http.StatusBadRequest, "bad_request")
			if msg := errMessage(r); !strings.Contains(msg, "expiring_within") {
				t.Errorf("expiring_within=%.20q: message %q does not name the parameter", v, msg)
			}
		}
	}
	// Expiring keys are active keys: asking for expiring orphaned or
	// expired ones is a contradiction, said as such.
	for _, st := range []string{"orphaned", "expired"} {
		r := w.do("GET", "/v1/keys?state="+st+"&expiring_within=7d", w.ownerTok, nil)
		r.WantError(http.StatusBadRequest, "bad_request")
		if msg := errMessage(r); !strings.Contains(msg, "active") {
			t.Errorf("state=%s&expiring_within=7d: message %q", st, msg)
		}
	}
	// An empty value is no filter, as for state.
	if got := len(w.listIDs(w.ownerTok, "/v1/keys?expiring_within=")); got != 1 {
		t.Errorf("expiring_within= (empty) listed %d keys, want 1", got)
	}
}

func errMessage(r *response) string {
	var e struct{ Error struct{ Message string } }
	r.Into(&e)
	return e.Error.Message
}

// GET /v1/keys?expiring_within=7d lists the caller's organization's active
// keys due within 7 days: never another organization's, never a revoked,
// orphaned or expired key, and on one app only that app's.
func TestExpiringWithinListsOnlyLiveKeysOfTheOrg(t *testing.T) {
	w := newExpiringWorld(t)
	for _, c := range []struct {
		token, path string
		want        []string
	}{
		{w.ownerTok, "/v1/keys?expiring_within=7d", sorted(w.soonA.ID, w.soonB.ID)},
		{w.ownerTok, "/v1/keys?expiring_within=168h", sorted(w.soonA.ID, w.soonB.ID)},
		{w.ownerTok, "/v1/keys?state=active&expiring_within=7d", sorted(w.soonA.ID, w.soonB.ID)},
		{w.auraTok, "/v1/keys?expiring_within=7d", sorted(w.soonA.ID, w.soonB.ID)},
		{w.ownerTok, "/v1/keys?expiring_within=4d", []string{w.soonA.ID}},
		{w.ownerTok, "/v1/keys?expiring_within=1d", []string{}},
		{w.ownerTok, "/v1/keys?expiring_within=31d", sorted(w.soonA.ID, w.soonB.ID, w.late.ID)},
		{w.ownerTok, "/v1/apps/" + w.appA.ID + "/keys?expiring_within=7d", []string{w.soonA.ID}},
		{w.ownerTok, "/v1/apps/" + w.appB.ID + "/keys?expiring_within=7d", []string{w.soonB.ID}},
		{w.otherTok, "/v1/keys?expiring_within=7d", []string{w.otherSoon.ID}},
		{w.otherTok, "/v1/apps/" + w.otherApp.ID + "/keys?expiring_within=7d", []string{w.otherSoon.ID}},
	} {
		if got := w.listIDs(c.token, c.path); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("GET %s = %v, want %v", c.path, got, c.want)
		}
	}
	// Another organization's app is unknown here, with or without the filter.
	w.do("GET", "/v1/apps/"+w.otherApp.ID+"/keys?expiring_within=7d", w.ownerTok, nil).WantError(http.StatusNotFound, "not_found")
	w.do("GET", "/v1/apps/"+w.appA.ID+"/keys?expiring_within=7d", w.otherTok, nil).WantError(http.StatusNotFound, "not_found")

	// Through the Go client.
	keys, err := w.owner.ListExpiringKeys(ctx(t), "", 7*day)
	must(t, err)
	if ids := keyIDs(keys); len(ids) != 2 || ids[w.soonA.ID].ID == "" || ids[w.soonB.ID].ID == "" {
		t.Errorf("client ListExpiringKeys = %v", keys)
	}
	keys, err = w.owner.ListExpiringKeys(ctx(t), w.appB.ID, 7*day)
	must(t, err)
	if len(keys) != 1 || keys[0].ID != w.soonB.ID {
		t.Errorf("client ListExpiringKeys(app B) = %v", keys)
	}
	_, err = w.owner.ListExpiringKeys(ctx(t), "", 10000*day)
	wantAPIError(t, err, http.StatusBadRequest, "bad_request")
}

// The key service exports appkeys_keys_expiring{within="7d"}: active keys
// due within 7 days, counted on the keys-by-state schedule. Like
// appkeys_keys it is the service's total (no organization label), so the
// other organization's key is in it; revoked, orphaned and expired keys
// never are.
func TestExpiringKeysMetric(t *testing.T) {
	w := newExpiringWorld(t, servicetest.WithConfig(func(c *keyserver.Config) { c.KeyCountEvery = 10 * time.Millisecond }))
	var fams map[string]*dto.MetricFamily
	eventually(t, "the keys counted after the changes", func() bool {
		fams = parseMetrics(t, string(w.do("GET", "/metrics", "", nil).WantStatus(http.StatusOK).Body))
		orphaned, _ := metricValue(fams, "appkeys_keys", map[string]string{"state": "orphaned"})
		expired, _ := metricValue(fams, "appkeys_keys", map[string]string{"state": "expired"})
		active, _ := metricValue(fams, "appkeys_keys", map[string]string{"state": "active"})
		return orphaned == 1 && expired == 1 && active == 4 // soon-a, soon-b, late and the other org's
	})
	f := fams["appkeys_keys_expiring"]
	if f == nil || f.GetType() != dto.MetricType_GAUGE || f.GetHelp() == "" || len(f.GetMetric()) != 1 {
		t.Fatalf("appkeys_keys_expiring family: %v", f)
	}
	labels := map[string]string{}
	for _, l := range f.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if len(labels) != 1 || labels["within"] != "7d" {
		t.Errorf("appkeys_keys_expiring labels = %v, want only within=\"7d\"", labels)
	}
	if got, _ := metricValue(fams, "appkeys_keys_expiring", map[string]string{"within": "7d"}); got != float64(w.expiringTotal) {
		t.Errorf("appkeys_keys_expiring{within=\"7d\"} = %v, want %d (soon-a, soon-b and the other org's)", got, w.expiringTotal)
	}
	problems, err := promlint.NewWithMetricFamilies([]*dto.MetricFamily{f}).Lint()
	must(t, err)
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}

	// Revoking one and letting time pass the other's expiry brings the
	// count down: an expired key is no longer "expiring".
	must(t, w.owner.RevokeKey(ctx(t), w.soonA.ID))
	w.clock.Advance(7 * day)
	eventually(t, "the count to drop to 0", func() bool {
		fams := parseMetrics(t, string(w.do("GET", "/metrics", "", nil).WantStatus(http.StatusOK).Body))
		n, ok := metricValue(fams, "appkeys_keys_expiring", map[string]string{"within": "7d"})
		return ok && n == 0
	})
}
