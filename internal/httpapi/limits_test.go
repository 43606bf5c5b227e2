package httpapi_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// A key's limits: set at creation, listed, carried by the verify answer,
// changed by PATCH with an audit record and a key.updated event on the
// app's feed, and removed with null.
func TestKeyLimitsFlow(t *testing.T) {
	w := newWorld(t)
	rl := &client.RateLimit{Requests: 5, Per: "1s"}
	k, err := w.member.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: "limited", ExpiresAt: w.clock.Now().Add(time.Hour),
		RateLimit: rl, AllowedCIDRs: []string{"10.0.0.0/8", "192.168.1.7", "10.0.0.0/8"}})
	must(t, err)
	wantCIDRs := []string{"10.0.0.0/8", "192.168.1.7/32"} // canonical, without the repeat
	if !reflect.DeepEqual(k.RateLimit, rl) || !reflect.DeepEqual(k.AllowedCIDRs, wantCIDRs) {
		t.Fatalf("create answered rate_limit %v, allowed_cidrs %v", k.RateLimit, k.AllowedCIDRs)
	}
	keys, err := w.owner.ListAppKeys(ctx(t), w.appA.ID, client.StateAny)
	must(t, err)
	if len(keys) != 1 || !reflect.DeepEqual(keys[0].RateLimit, rl) || !reflect.DeepEqual(keys[0].AllowedCIDRs, wantCIDRs) {
		t.Fatalf("listed %+v", keys)
	}
	v := w.verify(w.verA, k.PlainKey)
	if !v.Valid || !reflect.DeepEqual(v.RateLimit, rl) || !reflect.DeepEqual(v.AllowedCIDRs, wantCIDRs) {
		t.Fatalf("verify answered %+v", v)
	}
	// A key without limits: null and [] in lists, nothing in the verify answer.
	plain := w.createKey(w.owner, w.appA.ID, "plain")
	r := w.do("POST", "/v1/verify", w.appA.VerifierToken, map[string]string{"key": plain.PlainKey}).WantStatus(200)
	if strings.Contains(string(r.Body), "rate_limit") || strings.Contains(string(r.Body), "allowed_cidrs") {
		t.Fatalf("verify of a key without limits: %s", r.Body)
	}
	r = w.do("GET", "/v1/apps/"+w.appA.ID+"/keys", w.ownerTok, nil).WantStatus(200)
	if !strings.Contains(string(r.Body), `"rate_limit":null,"allowed_cidrs":[]`) {
		t.Fatalf("a key without limits is listed as %s", r.Body)
	}

	head, err := w.verA.EventsHead(ctx(t))
	must(t, err)
	// PATCH one field: the other stays.
	up, err := w.owner.UpdateKey(ctx(t), k.ID, client.UpdateKeyRequest{RateLimit: &client.RateLimit{Requests: 100, Per: "1h"}})
	must(t, err)
	if up.RateLimit.String() != "100/1h" || !reflect.DeepEqual(up.AllowedCIDRs, wantCIDRs) {
		t.Fatalf("PATCH rate_limit answered %+v", up)
	}
	// null removes.
	up, err = w.owner.UpdateKey(ctx(t), k.ID, client.UpdateKeyRequest{ClearAllowedCIDRs: true})
	must(t, err)
	if up.RateLimit.String() != "100/1h" || len(up.AllowedCIDRs) != 0 {
		t.Fatalf("PATCH allowed_cidrs null answered %+v", up)
	}
	v = w.verify(w.verA, k.PlainKey)
	if v.RateLimit.String() != "100/1h" || v.AllowedCIDRs != nil {
		t.Fatalf("verify after the PATCHes answered %+v", v)
	}
	page, err := w.verA.Events(ctx(t), head, 0)
	must(t, err)
	if len(page.Events) != 2 || page.Events[0].Type != client.EventKeyUpdated || page.Events[0].KeyID != k.ID {
		t.Fatalf("the feed after two PATCHes: %+v", page.Events)
	}
	recs, err := w.owner.ListAudit(ctx(t), 2)
	must(t, err)
	if len(recs) != 2 || recs[0].Action != "key.update" || recs[0].Target != k.ID ||
		recs[0].Detail != "was rate_limit 100/1h, allowed_cidrs 10.0.0.0/8 192.168.1.7/32, now rate_limit 100/1h" {
		t.Fatalf("audit after the PATCHes: %+v", recs)
	}
	// A revoked key is gone for PATCH as for everything else.
	must(t, w.owner.RevokeKey(ctx(t), k.ID))
	w.do("PATCH", "/v1/keys/"+k.ID, w.ownerTok, map[string]any{"rate_limit": nil}).WantError(404, "not_found")
}

// What a careless or hostile caller sends as limits is refused with one
// clear line, at creation and in a PATCH alike, and changes nothing.
func TestKeyLimitsMalformed(t *testing.T) {
	w := newWorld(t)
	k := w.createKey(w.owner, w.appA.ID, "target")
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf("10.%d.0.0/16", i)
	}
	rate := func(req any, per any) map[string]any {
		return map[string]any{"rate_limit": map[string]any{"requests": req, "per": per}}
	}
	cidrs := func(c ...string) map[string]any { return map[string]any{"allowed_cidrs": c} }
	cases := []struct {
		name   string
		body   any
		status int
		want   string // in the message
	}{
		{"zero requests", rate(0, "1s"), 422, "rate_limit.requests must be from 1 to 1000000"},
		{"negative requests", rate(-5, "1s"), 422, "rate_limit.requests"},
		{"huge requests", rate(1_000_001, "1s"), 422, "rate_limit.requests"},
		{"requests past int64", `{"rate_limit": {"requests": 1e30, "per": "1s"}}`, 400, ""},
		{"fractional requests", `{"rate_limit": {"requests": 2.5, "per": "1s"}}`, 400, ""},
		{"per 2s", rate(5, "2s"), 422, `rate_limit.per must be`},
		{"per second", rate(5, "second"), 422, "rate_limit.per"},
		{"per empty", rate(5, ""), 422, "rate_limit.per"},
		{"per a number", rate(5, 1), 400, ""},
		{"rate_limit a string", map[string]any{"rate_limit": "5/s"}, 400, "rate_limit must be"},
		{"rate_limit unknown field", `{"rate_limit": {"requests": 5, "per": "1s", "burst": 100}}`, 400, ""},
		{"host bits", cidrs("10.0.0.1/8"), 422, "did you mean 10.0.0.0/8?"},
		{"not a cidr", cidrs("not-a-network"), 422, "is not a CIDR range"},
		{"prefix too long", cidrs("10.0.0.0/33"), 422, "is not a CIDR range"},
		{"zone", cidrs("fe80::1%eth0"), 422, "zone"},
		{"4in6", cidrs("::ffff:10.0.0.0/104"), 422, "write it as IPv4"},
		{"too many", cidrs(many...), 422, "at most 32 networks"},
		{"huge string", cidrs(strings.Repeat("1", 10_000)), 422, "is not a CIDR range"},
		{"cidrs a string", map[string]any{"allowed_cidrs": "10.0.0.0/8"}, 400, "allowed_cidrs must be"},
	}
	for _, c := range cases {
		r := w.do("PATCH", "/v1/keys/"+k.ID, w.ownerTok, c.body)
		r.WantError(c.status, "")
		if !strings.Contains(string(r.Body), c.want) {
			t.Errorf("PATCH %s: %s, want a message with %q", c.name, r.Body, c.want)
		}
		if strings.Contains(string(r.Body), strings.Repeat("1", 100)) {
			t.Errorf("PATCH %s: the answer repeats the whole input: %.200s", c.name, r.Body)
		}
		// The same limits at creation are refused as well.
		body := map[string]any{"name": "new-" + strings.ReplaceAll(c.name, " ", "-"), "expires_at": w.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
		raw, isRaw := c.body.(string)
		if isRaw {
			raw = `{"name": "x", "expires_at": "` + body["expires_at"].(string) + `", ` + strings.TrimPrefix(raw, "{")
			r = w.do("POST", "/v1/apps/"+w.appA.ID+"/keys", w.ownerTok, raw)
		} else {
			for f, v := range c.body.(map[string]any) {
				body[f] = v
			}
			r = w.do("POST", "/v1/apps/"+w.appA.ID+"/keys", w.ownerTok, body)
		}
		if r.Status != c.status {
			t.Errorf("create with %s: %d, want %d: %s", c.name, r.Status, c.status, r.Body)
		}
	}
	// An empty PATCH is an error, not a silent no-op.
	w.do("PATCH", "/v1/keys/"+k.ID, w.ownerTok, map[string]any{}).WantError(http.StatusBadRequest, "bad_request")
	// Nothing was changed, nothing was created.
	keys, err := w.owner.ListAppKeys(ctx(t), w.appA.ID, client.StateAny)
	must(t, err)
	if len(keys) != 1 || keys[0].RateLimit != nil || len(keys[0].AllowedCIDRs) != 0 {
		t.Fatalf("after the refused calls: %+v", keys)
	}
}
