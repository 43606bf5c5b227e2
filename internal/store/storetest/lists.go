package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/appkeys/appkeys/internal/store"
)

// testEmptyLists: on an empty store every list answers an empty slice, not
// nil, so that a caller who encodes it writes [] and never null.
func testEmptyLists(t *testing.T, s *store.Store) {
	ctx := context.Background()
	const org, app = "org_none", "app_none"
	lists := map[string]func() (any, error){
		"ListUsers":   func() (any, error) { return s.ListUsers(ctx, org) },
		"ListApps":    func() (any, error) { return s.ListApps(ctx, org, t0) },
		"ListSecrets": func() (any, error) { return s.ListSecrets(ctx, org) },
		"ListAudit":   func() (any, error) { return s.ListAudit(ctx, org, 10) },
		"EventsAfter": func() (any, error) {
			events, _, err := s.EventsAfter(ctx, app, 0, 10)
			return events, err
		},
	}
	for _, sel := range []store.KeySelect{store.AnyKey, store.UnexpiredKeys, store.ExpiredKeys, store.OrphanedKeys} {
		lists[fmt.Sprintf("ListKeys/%d", sel)] = func() (any, error) {
			return s.ListKeys(ctx, store.KeyFilter{OrgID: org, AppID: app, Select: sel, Now: t0})
		}
	}
	for name, list := range lists {
		v, err := list()
		if err != nil {
			t.Errorf("%s on an empty store: %v", name, err)
			continue
		}
		// A nil slice encodes as null.
		if b, _ := json.Marshal(v); string(b) != "[]" {
			t.Errorf("%s on an empty store encodes as %s, want []", name, b)
		}
	}
}
