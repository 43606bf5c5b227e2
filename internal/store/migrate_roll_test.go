package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// A database from before rolls (0001 and 0002 only) gets 0003 when a newer
// binary opens it: its keys keep their names, and a secret a key was saved
// in at creation is found again, so a roll of that key updates it.
func TestMigrationKeyRollKeepsSavedSecrets(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			db := migrationDBs[name](t)
			ctx := context.Background()
			now := storetestNow()
			s, owner := bootstrapped(t, db.dsn)
			app := store.App{ID: "app_1", OrgID: owner.OrgID, Name: "fn", Kind: "cloud_function", VerifierHash: "v1:ver", CreatedAt: now, CreatedBy: owner.ID}
			if err := s.CreateApp(ctx, app); err != nil {
				t.Fatal(err)
			}
			k := store.Key{ID: "key_1", OrgID: owner.OrgID, AppID: app.ID, Name: "ci", Prefix: "cak_abcdef", Hash: "v1:k1", ExpiresAt: now.Add(48 * time.Hour), CreatedAt: now, CreatedBy: owner.ID}
			if err := s.CreateKey(ctx, k, &store.Secret{OrgID: owner.OrgID, Name: "CI_KEY", Ciphertext: []byte("old"), CreatedAt: now, CreatedBy: owner.ID}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateSecret(ctx, store.Secret{OrgID: owner.OrgID, Name: "BY_HAND", Ciphertext: []byte("x"), CreatedAt: now, CreatedBy: owner.ID}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			// Take the database back to what the 0002 binary left.
			execAll(t, db.driver, db.raw,
				`DROP INDEX secrets_key`, `ALTER TABLE secrets DROP COLUMN key_id`,
				`DROP INDEX api_keys_name`, `CREATE UNIQUE INDEX api_keys_name ON api_keys (app_id, name) WHERE revoked_at IS NULL`,
				`ALTER TABLE api_keys DROP COLUMN rolled_from`, `ALTER TABLE api_keys DROP COLUMN rolled_to`,
				`ALTER TABLE events DROP COLUMN expires_at`,
				`DELETE FROM schema_migrations WHERE version = '0003_key_roll'`)

			s, err := store.Open(ctx, db.dsn)
			if err != nil {
				t.Fatalf("open a 0002 database: %v", err)
			}
			defer s.Close()
			if got, err := s.GetKey(ctx, owner.OrgID, k.ID); err != nil || got.Name != "ci" || got.RolledTo != "" {
				t.Fatalf("the key after migrating: %+v, %v", got, err)
			}
			r, err := s.RollKey(ctx, store.KeyRoll{
				OrgID: owner.OrgID, OldID: k.ID, OldExpiresAt: now.Add(time.Hour),
				New:  store.Key{ID: "key_2", Prefix: "cak_newkey", Hash: "v1:k2", ExpiresAt: now.Add(72 * time.Hour), CreatedAt: now, CreatedBy: owner.ID},
				Seal: func(name string) ([]byte, error) { return []byte("new " + name), nil },
			})
			if err != nil || len(r.Secrets) != 1 || r.Secrets[0] != "CI_KEY" {
				t.Fatalf("roll after migrating: secrets %v, %v; want CI_KEY alone", r.Secrets, err)
			}
		})
	}
}
