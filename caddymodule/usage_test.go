package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// usage_interval and usage_drop_after: read, defaulted, and refused when
// negative, zero (which would report in a busy loop) or given twice.
func TestUnmarshalCaddyfileUsage(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("appkey_auth {\nusage_interval 2s\nusage_drop_after 1m\n}")); err != nil {
		t.Fatal(err)
	}
	if time.Duration(h.UsageInterval) != 2*time.Second || time.Duration(h.UsageDropAfter) != time.Minute {
		t.Fatalf("got %v, %v", h.UsageInterval, h.UsageDropAfter)
	}
	var d Handler
	d.setDefaults()
	if time.Duration(d.UsageInterval) != 10*time.Second || time.Duration(d.UsageDropAfter) != 5*time.Minute {
		t.Fatalf("defaults %v, %v", d.UsageInterval, d.UsageDropAfter)
	}
	for input, want := range map[string]string{
		"appkey_auth {\nusage_interval -1s\n}":                       "usage_interval",
		"appkey_auth {\nusage_interval 0s\n}":                        "usage_interval",
		"appkey_auth {\nusage_interval soon\n}":                      "usage_interval",
		"appkey_auth {\nusage_drop_after -5m\n}":                     "usage_drop_after",
		"appkey_auth {\nusage_interval 1s\nusage_interval 2s\n}":     "usage_interval: given twice",
		"appkey_auth {\nusage_drop_after 1m\nusage_drop_after 2m\n}": "usage_drop_after: given twice",
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error about %s", input, err, want)
		}
	}
}
