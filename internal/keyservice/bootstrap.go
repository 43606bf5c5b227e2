package keyservice

import (
	"context"
	"fmt"

	"github.com/appkeys/appkeys/internal/store"
)

// Bootstrap prepares an empty store: a platform admin and a first
// organization with its owner, in one transaction. Tokens left empty are
// generated; supplied ones must pass AdminToken.Check and OwnerToken.Check.
// persist saves the two tokens; it runs before the transaction commits, so
// a crash can never leave a bootstrapped store whose tokens nobody has. It
// returns created=false, and no tokens, when the store was not empty.
func (s *Service) Bootstrap(ctx context.Context, adminToken, ownerToken string, persist func(admin, owner string) error) (admin, owner string, created bool, err error) {
	empty, err := s.store.IsEmpty(ctx)
	if err != nil || !empty {
		return "", "", false, s.storeErr(err)
	}
	if adminToken == "" {
		adminToken = AdminToken.New()
	} else if err := AdminToken.Check(adminToken); err != nil {
		return "", "", false, fmt.Errorf("the admin token %w", err)
	}
	if ownerToken == "" {
		ownerToken = OwnerToken.New()
	} else if err := OwnerToken.Check(ownerToken); err != nil {
		return "", "", false, fmt.Errorf("the owner token %w", err)
	}
	orgID := newID("org")
	now := s.now().UTC()
	org := store.Org{ID: orgID, Name: "Default", CreatedAt: now}
	ownerUser := s.withFirstToken(store.User{ID: newID("usr"), OrgID: orgID, Email: "owner@appkeys.local", Role: RoleOwner, CreatedAt: now}, ownerToken)
	created, err = s.store.Bootstrap(ctx, s.keys.hashToken(adminToken), org, ownerUser, func() error { return persist(adminToken, ownerToken) })
	if err != nil || !created {
		return "", "", false, s.storeErr(err)
	}
	return adminToken, ownerToken, true, nil
}
