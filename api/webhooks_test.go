package api

import (
	"bytes"
	"encoding/json"
	"io"
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
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, svc.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+svc.OwnerToken)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
		}
		schema := responseSchema(t, d, method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
		if schema == nil {
			return nil
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: not JSON: %v", method, path, err)
		}
		for _, problem := range checkSchema(d, schema, v) {
			t.Errorf("%s %s (%d): %s", method, path, resp.StatusCode, problem)
		}
		m, _ := v.(map[string]any)
		return m
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
