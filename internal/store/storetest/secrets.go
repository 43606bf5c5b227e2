package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

func testSecrets(t *testing.T, s *store.Store) {
	ctx := context.Background()
	f := setup(t, s)
	sec := store.Secret{OrgID: f.org.ID, Name: "API_KEY", Ciphertext: []byte{1, 2, 3}, CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateSecret(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSecret(ctx, sec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate secret: %v", err)
	}
	got, err := s.ReadSecret(ctx, f.org.ID, "API_KEY", f.owner.ID, t0)
	if err != nil || string(got.Ciphertext) != string(sec.Ciphertext) {
		t.Fatalf("ReadSecret = %+v, %v", got, err)
	}
	other := setup(t, s)
	if _, err := s.ReadSecret(ctx, other.org.ID, "API_KEY", other.owner.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read across orgs: %v", err)
	}
	list, _ := s.ListSecrets(ctx, f.org.ID)
	if len(list) != 1 || list[0].Ciphertext != nil {
		t.Fatalf("ListSecrets = %+v", list)
	}
	// A key saved as a secret: both or neither.
	k := store.Key{ID: id("key"), OrgID: f.org.ID, AppID: f.app.ID, Name: "k", Prefix: "p", Hash: id("h"), ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, CreatedBy: f.owner.ID}
	if err := s.CreateKey(ctx, k, &sec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("key with taken secret name: %v", err)
	}
	if _, err := s.GetKey(ctx, f.org.ID, k.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("key half-written when its secret failed")
	}
	if err := s.DeleteSecret(ctx, f.org.ID, "API_KEY", f.owner.ID, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecret(ctx, f.org.ID, "API_KEY", f.owner.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	audit, _ := s.ListAudit(ctx, f.org.ID, 100)
	reads := 0
	for _, a := range audit {
		if a.Action == "secret.read" {
			reads++
		}
	}
	if reads != 1 {
		t.Fatalf("secret.read audit records = %d, want 1", reads)
	}
}
