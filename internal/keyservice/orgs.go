package keyservice

import (
	"context"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// Org is an organization.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

func orgOf(o store.Org) Org { return Org{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt} }

// OrgCreated is the answer to CreateOrg.
type OrgCreated struct {
	Org        Org
	Owner      User
	OwnerToken string
}

// CreateOrg creates an organization and its owner (platform admin only).
func (s *Service) CreateOrg(ctx context.Context, c Caller, name, ownerEmail string) (OrgCreated, error) {
	if !c.Admin {
		return OrgCreated{}, errorf(KindForbidden, "only the platform admin may create organizations")
	}
	name, err := checkName("name", name)
	if err != nil {
		return OrgCreated{}, err
	}
	email, err := checkEmail(ownerEmail)
	if err != nil {
		return OrgCreated{}, err
	}
	ownerToken := newToken(userTokenPrefix)
	now := s.now().UTC()
	org := store.Org{ID: newID("org"), Name: name, CreatedAt: now}
	owner := s.withFirstToken(store.User{ID: newID("usr"), OrgID: org.ID, Email: email, Role: RoleOwner, CreatedAt: now}, ownerToken)
	if err := s.store.CreateOrg(ctx, org, owner, "admin"); err != nil {
		return OrgCreated{}, s.conflict(err, "an organization named %q already exists", name)
	}
	return OrgCreated{Org: orgOf(org), Owner: *userOf(owner), OwnerToken: ownerToken}, nil
}

// Me returns the caller's user and organization.
func (s *Service) Me(ctx context.Context, c Caller) (User, Org, error) {
	u, err := c.user()
	if err != nil {
		return User{}, Org{}, err
	}
	org, err := s.store.GetOrg(ctx, u.OrgID)
	return *u, orgOf(org), s.storeErr(err)
}
