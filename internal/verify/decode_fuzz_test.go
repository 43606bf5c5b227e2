package verify

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/appkeys/appkeys/internal/apikey"
)

// The sidecar trusts the key service's answers to say yes or no. These fuzz
// targets feed the decoders arbitrary bodies and check that whatever they
// accept is a verdict the engine can act on safely, and that whatever they
// refuse is refused as a *BadAnswerError (which the engine treats as an
// outage: stale or 503, never 200 and never 401).

func FuzzVerifyAnswer(f *testing.F) {
	for _, s := range []string{
		`{"valid":true,"code":"VALID","key_id":"key_1","key_name":"ci","app_id":"app_1","expires_at":"2030-01-02T03:04:05Z"}`,
		`{"valid":false,"code":"REVOKED","key_id":"key_1","app_id":"app_1"}`,
		`{"valid":false,"code":"NOT_FOUND"}`,
		`{"valid":true,"code":"REVOKED","key_id":"key_1","app_id":"app_1"}`,
		`{"valid":true,"code":"VALID"}`,
		`{"valid":"yes","code":"VALID"}`,
		`{"code":"VALID"}`,
		`{"valid":false,"code":"MAYBE"}`,
		`{"valid":true,"code":"VALID","key_id":"k","app_id":"a","expires_at":"tomorrow"}`,
		`{"valid":false,"code":"EXPIRED"} {}`,
		`{"valid":true,"code":"VALID","key_id":"k","app_id":"a","expires_at":"2030-01-02T03:04:05Z","rate_limit":{"requests":5,"per":"1s"},"allowed_cidrs":["10.0.0.0/8","2001:db8::/32"]}`,
		`{"valid":true,"code":"VALID","key_id":"k","app_id":"a","expires_at":"2030-01-02T03:04:05Z","rate_limit":{"requests":0,"per":"1h"}}`,
		`{"valid":true,"code":"VALID","key_id":"k","app_id":"a","expires_at":"2030-01-02T03:04:05Z","allowed_cidrs":["10.0.0.1/8"]}`,
		`{"valid":false,"code":"EXPIRED"`,
		`[]`, `null`, ``, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeVerifyAnswer(data)
		if err != nil {
			var bad *BadAnswerError
			if !errors.As(err, &bad) {
				t.Fatalf("error %T (%v) is not a *BadAnswerError", err, err)
			}
			if !reflect.DeepEqual(r, Result{}) {
				t.Fatalf("error %v came with a result %+v", err, r)
			}
			return
		}
		if _, ok := ParseCode(r.Code.String()); !ok {
			t.Fatalf("accepted an unknown code: %+v", r)
		}
		if r.Valid != (r.Code == CodeValid) {
			t.Fatalf("accepted valid=%t with code %s", r.Valid, r.Code)
		}
		if r.Valid && (r.KeyID == "" || r.AppID == "") {
			t.Fatalf("accepted a valid verdict without ids: %+v", r)
		}
		// What was accepted must say the same when read again: the decoder
		// may not invent or drop anything the engine acts on.
		again, err := decodeVerifyAnswer(encodeVerifyAnswer(t, r))
		if err != nil {
			t.Fatalf("re-encoded %+v is refused: %v", r, err)
		}
		if again.Valid != r.Valid || again.Code != r.Code || again.KeyID != r.KeyID || again.AppID != r.AppID || !again.ExpiresAt.Equal(r.ExpiresAt) ||
			again.Rate != r.Rate || !reflect.DeepEqual(again.AllowedNets, r.AllowedNets) {
			t.Fatalf("round trip changed the verdict: %+v became %+v", r, again)
		}
	})
}

func encodeVerifyAnswer(t *testing.T, r Result) []byte {
	a := map[string]any{"valid": r.Valid, "code": r.Code.String(), "key_id": r.KeyID, "key_name": r.KeyName, "app_id": r.AppID}
	if !r.ExpiresAt.IsZero() {
		a["expires_at"] = r.ExpiresAt.Format(time.RFC3339Nano)
	}
	if r.Rate.Requests > 0 {
		a["rate_limit"] = map[string]any{"requests": r.Rate.Requests, "per": map[time.Duration]string{time.Second: "1s", time.Minute: "1m", time.Hour: "1h"}[r.Rate.Per]}
	}
	if len(r.AllowedNets) > 0 {
		a["allowed_cidrs"] = r.AllowedNets
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func FuzzEventsAnswer(f *testing.F) {
	for _, s := range []string{
		`{"events":[],"next":0}`,
		`{"events":[{"seq":1,"type":"key.revoked","key_id":"key_1","at":"2026-01-02T03:04:05Z"},{"seq":2,"type":"app.deleted","app_id":"app_1","at":"2026-01-02T03:04:06Z"}],"next":2}`,
		`{"events":[{"seq":2,"type":"key.revoked"},{"seq":1,"type":"key.revoked"}],"next":2}`,
		`{"events":[{"seq":1,"type":"key.revoked"},{"seq":1,"type":"key.revoked"}],"next":1}`,
		`{"events":[{"seq":0,"type":"key.revoked"}],"next":1}`,
		`{"events":[{"seq":1,"type":""}],"next":1}`,
		`{"events":[{"seq":1,"type":"key.orphaned","at":"yesterday"}],"next":1}`,
		`{"events":[]}`,
		`{"events":null,"next":5}`,
		`{"next":"5"}`,
		`{"next":5} x`,
		`[]`, `null`, ``, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		page, err := decodeEventsAnswer(data)
		if err != nil {
			var bad *BadAnswerError
			if !errors.As(err, &bad) {
				t.Fatalf("error %T (%v) is not a *BadAnswerError", err, err)
			}
			if page.Events != nil || page.Next != 0 {
				t.Fatalf("error %v came with a page %+v", err, page)
			}
			return
		}
		for i, ev := range page.Events {
			if ev.Seq <= 0 || ev.Type == "" {
				t.Fatalf("accepted event %d without seq or type: %+v", i, ev)
			}
			if i > 0 && ev.Seq <= page.Events[i-1].Seq {
				t.Fatalf("accepted events out of order: %d after %d", ev.Seq, page.Events[i-1].Seq)
			}
		}
		again, err := decodeEventsAnswer(encodeEventsAnswer(t, page))
		if err != nil {
			t.Fatalf("re-encoded %+v is refused: %v", page, err)
		}
		if again.Next != page.Next || len(again.Events) != len(page.Events) {
			t.Fatalf("round trip changed the page: %+v became %+v", page, again)
		}
		for i := range page.Events {
			a, b := page.Events[i], again.Events[i]
			if a.Seq != b.Seq || a.Type != b.Type || a.KeyID != b.KeyID || a.AppID != b.AppID || !a.At.Equal(b.At) {
				t.Fatalf("round trip changed event %d: %+v became %+v", i, a, b)
			}
		}
	})
}

func encodeEventsAnswer(t *testing.T, p EventPage) []byte {
	events := p.Events
	if events == nil {
		events = []Event{}
	}
	data, err := json.Marshal(map[string]any{"events": events, "next": p.Next})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzErrorAnswer checks the error bodies the sidecar reads on a non-200
// answer: their text goes to logs, so it is bounded, valid UTF-8 when the
// body was, and never holds the key prefix (the decoder cannot know a key's
// bare body; the key service never quotes one, prefix or not).
func FuzzErrorAnswer(f *testing.F) {
	key, err := apikey.Generate()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`{"error":{"code":"unavailable","message":"the store is not reachable"}}`,
		`{"error":{"code":"bad_request","message":"key ` + key + ` is not valid"}}`,
		`{"error":{"code":"x","message":"\u0063ak_` + key[4:] + `"}}`,
		`{"error":{"code":"` + strings.Repeat("c", 300) + `","message":"` + strings.Repeat("m", 3000) + `"}}`,
		`{"error":"flat"}`,
		`{"error":{"code":"x","message":"` + strings.Repeat("€", 150) + `"}}`,
		`<html>502 Bad Gateway</html>`,
		``,
	} {
		f.Add(503, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, data []byte) {
		se := decodeErrorAnswer(status, data)
		if se.Status != status {
			t.Fatalf("status %d became %d", status, se.Status)
		}
		if len(se.Code) > 64 || len(se.Message) > 200 {
			t.Fatalf("unbounded error text: %d and %d bytes", len(se.Code), len(se.Message))
		}
		if !utf8.ValidString(se.Code) || !utf8.ValidString(se.Message) {
			t.Fatalf("error text cut inside a character: %q, %q", se.Code, se.Message)
		}
		if msg := se.Error(); strings.Contains(msg, apikey.Prefix) {
			t.Fatalf("error text quotes a key: %q", msg)
		}
	})
}
