package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

func TestParseRateLimit(t *testing.T) {
	for in, want := range map[string]string{
		"5/s": "5/1s", "5/1s": "5/1s", "5/second": "5/1s", " 100 / m ": "100/1m", "1000/h": "1000/1h", "7/Hour": "7/1h",
	} {
		got, err := parseRateLimit(in)
		if err != nil || got.String() != want {
			t.Errorf("parseRateLimit(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "5", "5/", "/s", "0/s", "-1/s", "5/2s", "5/day", "five/s", "5/s/s", "1e3/s"} {
		if _, err := parseRateLimit(in); err == nil || !strings.Contains(err.Error(), "5/s, 100/m or 1000/h") {
			t.Errorf("parseRateLimit(%q): %v; want the usage", in, err)
		}
	}
}

// Limits through the command line against the real service: set at
// creation, listed, changed and removed by update; a bad value is one
// clear line, with no key made or changed.
func TestCLIKeyLimits(t *testing.T) {
	svc := servicetest.Start(t)
	e := e2e{t: t, svc: svc}
	owner := svc.OwnerToken
	e.run(owner, "apps", "create", "--name", "shop", "--kind", "cloud_function")
	r := e.run(owner, "keys", "create", "--app", "shop", "--name", "ci", "--expires", "30d", "--rate-limit", "5/s", "--allowed-cidrs", "10.0.0.0/8, 192.168.1.7")
	if got := fieldOf(t, r.stdout, "LIMITS"); got != "5/1s from 10.0.0.0/8 192.168.1.7/32" {
		t.Fatalf("create printed LIMITS %q:\n%s", got, r.stdout)
	}
	id := fieldOf(t, r.stdout, "ID")
	if r := e.run(owner, "keys", "list"); !strings.Contains(r.stdout, "5/1s from 10.0.0.0/8 192.168.1.7/32") {
		t.Fatalf("keys list:\n%s", r.stdout)
	}
	var k client.Key
	e.runJSON(owner, &k, "keys", "update", id, "--rate-limit", "1000/h")
	if k.RateLimit.String() != "1000/1h" || !reflect.DeepEqual(k.AllowedCIDRs, []string{"10.0.0.0/8", "192.168.1.7/32"}) {
		t.Fatalf("update --rate-limit: %+v", k)
	}
	r = e.run(owner, "keys", "update", id, "--allowed-cidrs", "none", "--rate-limit", "none")
	if got := fieldOf(t, r.stdout, "LIMITS"); got != "-" {
		t.Fatalf("update to none printed LIMITS %q:\n%s", got, r.stdout)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "update", id}, "nothing to change"},
		{[]string{"keys", "update", id, "--rate-limit", "5"}, "invalid --rate-limit"},
		{[]string{"keys", "update", id, "--rate-limit", "0/s"}, "invalid --rate-limit"},
		{[]string{"keys", "update", id, "--rate-limit", "2000000/s"}, "rate_limit.requests must be from 1 to 1000000"},
		{[]string{"keys", "update", id, "--allowed-cidrs", "10.0.0.1/8"}, "did you mean 10.0.0.0/8?"},
		{[]string{"keys", "update", id, "--allowed-cidrs", ","}, "invalid --allowed-cidrs"},
		{[]string{"keys", "update", "key_nope", "--rate-limit", "5/s"}, "not found"},
		{[]string{"keys", "create", "--app", "shop", "--name", "bad", "--expires", "30d", "--allowed-cidrs", "nowhere"}, "is not a CIDR range"},
	} {
		r := e.try(owner, c.args...)
		if r.err == nil || !strings.Contains(r.errLine(), c.want) || strings.Count(strings.TrimSpace(r.errLine()), "\n") != 0 {
			t.Errorf("appkeys %s: %q; want one line with %q", strings.Join(c.args, " "), r.errLine(), c.want)
		}
	}
	var list struct{ Keys []client.Key }
	e.runJSON(owner, &list, "keys", "list")
	if len(list.Keys) != 1 || list.Keys[0].RateLimit != nil || len(list.Keys[0].AllowedCIDRs) != 0 || list.Keys[0].ExpiresAt.Before(time.Now()) {
		t.Fatalf("after the refused commands: %+v", list.Keys)
	}
}
