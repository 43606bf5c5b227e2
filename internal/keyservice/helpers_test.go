package keyservice

import (
	"context"
	"testing"

	"github.com/appkeys/appkeys/internal/store"
)

// bootstrapped returns a service on st (cfg's Store is set here, and a
// zero master key when cfg has none) with its first organization made,
// and the owner's token.
func bootstrapped(t *testing.T, st *store.Store, cfg Config) (*Service, string) {
	t.Helper()
	cfg.Store = st
	if cfg.MasterKey == nil {
		cfg.MasterKey = make([]byte, MasterKeyLen)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, owner, _, err := svc.Bootstrap(context.Background(), "", "", func(string, string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return svc, owner
}
