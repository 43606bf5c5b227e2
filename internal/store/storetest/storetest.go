// Package storetest is the contract every store implementation passes: the
// same suite runs on SQLite and on PostgreSQL.
package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// Open returns an empty store for one test.
type Open func(t *testing.T) *store.Store

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// Run runs the contract suite.
func Run(t *testing.T, open Open) {
	t.Run("OrgsUsersApps", func(t *testing.T) { testOrgsUsersApps(t, open(t)) })
	t.Run("KeysLifecycle", func(t *testing.T) { testKeysLifecycle(t, open(t)) })
	t.Run("OrphanOnAppDelete", func(t *testing.T) { testOrphanOnAppDelete(t, open(t)) })
	t.Run("OrphanOnCreatorDelete", func(t *testing.T) { testOrphanOnCreatorDelete(t, open(t)) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, open(t)) })
	t.Run("EventsCursor", func(t *testing.T) { testEventsCursor(t, open(t)) })
	t.Run("ConcurrentRevokes", func(t *testing.T) { testConcurrentRevokes(t, open(t)) })
	t.Run("ConcurrentEventWriters", func(t *testing.T) { testConcurrentEventWriters(t, open(t)) })
	t.Run("FeedAfter", func(t *testing.T) { testFeedAfter(t, open(t)) })
	t.Run("FeedChangeHeard", func(t *testing.T) { testFeedChangeHeard(t, open(t)) })
	t.Run("CreateRacesDelete", func(t *testing.T) { testCreateRacesDelete(t, open(t)) })
	t.Run("Bootstrap", func(t *testing.T) { testBootstrap(t, open(t)) })
	t.Run("ConsoleSessions", func(t *testing.T) { testConsoleSessions(t, open(t)) })
	t.Run("ConsoleSessionReplaces", func(t *testing.T) { testConsoleSessionReplaces(t, open(t)) })
	t.Run("ConsoleSessionExpiryAndSweep", func(t *testing.T) { testConsoleSessionExpiryAndSweep(t, open(t)) })
	t.Run("ConsoleSessionsEndWithTheirUser", func(t *testing.T) { testConsoleSessionsEndWithTheirUser(t, open(t)) })
	t.Run("ConcurrentConsoleSessionFlash", func(t *testing.T) { testConcurrentConsoleSessionFlash(t, open(t)) })
	t.Run("RollKey", func(t *testing.T) { testRollKey(t, open(t)) })
	t.Run("RollSecrets", func(t *testing.T) { testRollSecrets(t, open(t)) })
	t.Run("ConcurrentRolls", func(t *testing.T) { testConcurrentRolls(t, open(t)) })
	t.Run("EmptyLists", func(t *testing.T) { testEmptyLists(t, open(t)) })
	t.Run("ExpiringKeys", func(t *testing.T) { testExpiringKeys(t, open(t)) })
	t.Run("VerifierTokens", func(t *testing.T) { testVerifierTokens(t, open(t)) })
	t.Run("ConcurrentVerifierMints", func(t *testing.T) { testConcurrentVerifierMints(t, open(t)) })
	t.Run("UserTokens", func(t *testing.T) { testUserTokens(t, open(t)) })
	t.Run("KeysByHashes", func(t *testing.T) { testKeysByHashes(t, open(t)) })
	t.Run("MarkLeakedRevokes", func(t *testing.T) { testMarkLeakedRevokes(t, open(t)) })
	t.Run("MarkLeakedNotifies", func(t *testing.T) { testMarkLeakedNotifies(t, open(t)) })
	t.Run("ConcurrentLeakReports", func(t *testing.T) { testConcurrentLeakReports(t, open(t)) })
	t.Run("Usage", func(t *testing.T) { testUsage(t, open(t)) })
	t.Run("UsageFullBatch", func(t *testing.T) { testUsageFullBatch(t, open(t)) })
	t.Run("KeyLimits", func(t *testing.T) { testKeyLimits(t, open(t)) })
	t.Run("ConcurrentLimitUpdates", func(t *testing.T) { testConcurrentLimitUpdates(t, open(t)) })
	t.Run("UserRoles", func(t *testing.T) { testUserRoles(t, open(t)) })
	t.Run("AuditFilters", func(t *testing.T) { testAuditFilters(t, open(t)) })
	t.Run("AuditByKey", func(t *testing.T) { testAuditByKey(t, open(t)) })
	t.Run("OIDCLogins", func(t *testing.T) { testOIDCLogins(t, open(t)) })
	t.Run("WebhookQueue", func(t *testing.T) { testWebhookQueue(t, open(t)) })
	t.Run("WebhookSecretRotation", func(t *testing.T) { testWebhookSecretRotation(t, open(t)) })
	t.Run("WebhookExpiryNotices", func(t *testing.T) { testWebhookExpiryNotices(t, open(t)) })
	t.Run("WebhookConcurrentClaims", func(t *testing.T) { testWebhookConcurrentClaims(t, open(t)) })
}

type fixture struct {
	s     *store.Store
	org   store.Org
	owner store.User
	app   store.App
}

var idSeq atomic.Int64

func id(prefix string) string { return fmt.Sprintf("%s_%08d", prefix, idSeq.Add(1)) }

func setup(t *testing.T, s *store.Store) fixture {
	t.Helper()
	ctx := context.Background()
	org := store.Org{ID: id("org"), Name: id("name"), CreatedAt: t0}
	owner := store.User{ID: id("usr"), OrgID: org.ID, Email: id("owner") + "@example.com", Role: "owner", TokenHash: id("tok"), CreatedAt: t0}
	if err := s.CreateOrg(ctx, org, owner, "admin"); err != nil {
		t.Fatal(err)
	}
	app := store.App{ID: id("app"), OrgID: org.ID, Name: "fn", Kind: "cloud_function", VerifierHash: id("ver"), CreatedAt: t0, CreatedBy: owner.ID}
	if err := s.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	return fixture{s: s, org: org, owner: owner, app: app}
}

func (f fixture) key(t *testing.T, appID, creator, name string, expires time.Time) store.Key {
	t.Helper()
	k := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: appID, Name: name, Prefix: "cak_abcdef", Hash: id("v1:h"),
		ExpiresAt: expires, CreatedAt: t0, CreatedBy: creator}
	if err := f.s.CreateKey(context.Background(), k, nil); err != nil {
		t.Fatal(err)
	}
	return k
}
