package api

import (
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/keyserver"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// TestOpenAPIDescribesWebhookAnswers: every webhook call's answers match
// openapi.yaml, errors included.
func TestOpenAPIDescribesWebhookAnswers(t *testing.T) {
	d := load(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })}
	go rcv.Serve(ln)
	defer rcv.Close()
	svc := servicetest.Start(t, servicetest.WithConfig(func(c *keyserver.Config) {
		c.WebhooksAllowPrivate = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.WebhookPoll = 20 * time.Millisecond
	}))
	call := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		return callChecked(t, d, svc.URL, svc.OwnerToken, method, path, body, want)
	}
	url := "http://" + ln.Addr().String() + "/hook"
	hook := call("POST", "/v1/webhooks", map[string]any{"url": url, "events": []string{"key.revoked", "key.created"}, "description": "ops"}, 201)
	id, _ := hook["id"].(string)
	call("POST", "/v1/webhooks", map[string]any{"url": "http://169.254.169.254/", "events": []string{"*"}}, 422)
	call("POST", "/v1/webhooks", map[string]any{"url": url, "events": []string{"*"}, "oops": 1}, 400)
	call("GET", "/v1/webhooks", nil, 200)
	call("GET", "/v1/webhooks/"+id, nil, 200)
	call("GET", "/v1/webhooks/whk_nope", nil, 404)
	call("PATCH", "/v1/webhooks/"+id, map[string]any{"events": []string{"*"}}, 200)
	call("POST", "/v1/webhooks/"+id+"/rotate-secret", nil, 200)
	call("POST", "/v1/webhooks/"+id+"/test", nil, 202)
	var deliveries []any
	for range 500 {
		deliveries, _ = call("GET", "/v1/webhooks/"+id+"/deliveries", nil, 200)["deliveries"].([]any)
		if len(deliveries) == 1 && deliveries[0].(map[string]any)["status"] == "delivered" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(deliveries) != 1 {
		t.Fatalf("deliveries %v", deliveries)
	}
	msg, _ := deliveries[0].(map[string]any)["id"].(string)
	call("POST", "/v1/webhooks/"+id+"/deliveries/"+msg+"/retry", nil, 202)
	call("GET", "/v1/webhooks/"+id+"/deliveries", nil, 200)
	call("PATCH", "/v1/webhooks/"+id, map[string]any{"enabled": false}, 200)
	call("POST", "/v1/webhooks/"+id+"/test", nil, 409)
	call("DELETE", "/v1/webhooks/"+id, nil, 204)
}
