package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// 50 concurrent creates and 50 concurrent revokes (each raced by a second
// revoke of the same key) on one app lose nothing and double nothing.
func TestConcurrentCreateAndRevoke(t *testing.T) {
	const n = 50
	w := newWorld(t)
	head, err := w.verA.EventsHead(ctx(t))
	must(t, err)
	exp := w.clock.Now().Add(24 * time.Hour)

	type made struct {
		id, plain string
		err       error
	}
	results := make([]made, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			by := []*client.Client{w.owner, w.aura, w.member}[i%3]
			k, err := by.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: fmt.Sprintf("key-%02d", i), ExpiresAt: exp})
			if err != nil {
				results[i].err = err
				return
			}
			results[i] = made{id: k.ID, plain: k.PlainKey}
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	plains := map[string]bool{}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("create %d: %v", i, r.err)
		}
		ids[r.id], plains[r.plain] = true, true
	}
	if len(ids) != n || len(plains) != n {
		t.Fatalf("%d creates gave %d ids and %d keys", n, len(ids), len(plains))
	}
	listed, err := w.owner.ListAppKeys(ctx(t), w.appA.ID, client.StateActive)
	must(t, err)
	if len(listed) != n {
		t.Fatalf("listed %d keys, want %d", len(listed), n)
	}
	for id := range keyIDs(listed) {
		if !ids[id] {
			t.Fatalf("listed a key nobody created: %s", id)
		}
	}
	a, err := w.owner.GetApp(ctx(t), w.appA.ID)
	must(t, err)
	if a.ActiveKeys != n {
		t.Fatalf("app counts %d active keys, want %d", a.ActiveKeys, n)
	}

	// Two revokes per key, all at once, alongside verifies.
	perKey := make(map[string]*[2]int, n)
	var mu sync.Mutex
	for id := range ids {
		perKey[id] = &[2]int{}
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := []string{w.ownerTok, w.memTok}[j]
				r := doHTTP(t, w.svc.URL, "DELETE", "/v1/keys/"+id, tok, nil)
				mu.Lock()
				perKey[id][j] = r.Status
				mu.Unlock()
			}()
		}
	}
	for _, r := range results[:10] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = w.verA.Verify(ctx(t), r.plain)
		}()
	}
	wg.Wait()
	for id, s := range perKey {
		if !(s[0] == 204 && s[1] == 404 || s[0] == 404 && s[1] == 204) {
			t.Errorf("key %s: revokes answered %v, want one 204 and one 404", id, *s)
		}
	}

	for _, r := range results {
		if res := w.verify(w.verA, r.plain); res.Code != client.VerifyRevoked || res.KeyID != r.id {
			t.Fatalf("after revoke: %+v", res)
		}
	}
	listed, err = w.owner.ListKeys(ctx(t), client.StateAny)
	must(t, err)
	if len(listed) != 0 {
		t.Fatalf("%d keys still listed after revoking them all", len(listed))
	}
	for _, id := range []string{results[0].id, results[n-1].id} {
		w.do("DELETE", "/v1/keys/"+id, w.ownerTok, nil).WantError(http.StatusNotFound, "not_found")
	}

	// The feed has exactly one key.revoked per key.
	revoked := map[string]int{}
	cursor := head
	for range 100 {
		page, err := w.verA.Events(ctx(t), cursor, 0)
		must(t, err)
		for _, e := range page.Events {
			if e.Type != client.EventKeyRevoked || e.AppID != w.appA.ID {
				t.Fatalf("unexpected event %+v", e)
			}
			revoked[e.KeyID]++
		}
		if page.Next == cursor {
			break
		}
		cursor = page.Next
	}
	if len(revoked) != n {
		t.Fatalf("the feed names %d revoked keys, want %d", len(revoked), n)
	}
	for id, c := range revoked {
		if c != 1 || !ids[id] {
			t.Fatalf("key %s: %d key.revoked events (known key: %v)", id, c, ids[id])
		}
	}
	// And the audit log one key.create and one key.revoke per key.
	var audit struct {
		Audit []struct{ Action, Target string }
	}
	w.do("GET", "/v1/audit?limit=1000", w.ownerTok, nil).WantStatus(http.StatusOK).Into(&audit)
	count := map[string]int{}
	for _, a := range audit.Audit {
		if ids[a.Target] {
			count[a.Action]++
		}
	}
	if count["key.create"] != n || count["key.revoke"] != n {
		t.Fatalf("audit records: %v", count)
	}
}
