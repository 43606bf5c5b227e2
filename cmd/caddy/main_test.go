package main

import (
	"os"
	"testing"

	"github.com/appkeys/appkeys/e2e"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestCaddyfileExampleAdapts: the shipped example is what `caddy adapt`
// accepts, without warnings, and appkey_auth runs before reverse_proxy
// with no `order` line.
func TestCaddyfileExampleAdapts(t *testing.T) {
	src, err := os.ReadFile("../../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s:%d: %s", w.File, w.Line, w.Message)
	}
	order, err := e2e.Handlers(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != "appkey_auth" || order[1] != "reverse_proxy" {
		t.Fatalf("handlers in order %v; want appkey_auth then reverse_proxy", order)
	}
}
