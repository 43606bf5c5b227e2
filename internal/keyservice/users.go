package keyservice

import (
	"context"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// User is a member of an organization. It has no token: the store keeps
// only its hash, and that stays there.
type User struct {
	ID        string
	OrgID     string
	Email     string
	Role      string
	CreatedAt time.Time
}

func userOf(u store.User) *User {
	return &User{ID: u.ID, OrgID: u.OrgID, Email: u.Email, Role: u.Role, CreatedAt: u.CreatedAt}
}

func checkRole(role string) error {
	switch role {
	case RoleOwner, RoleAuraOwner, RoleMember:
		return nil
	}
	return errorf(KindInvalid, "role must be owner, aura_owner or member")
}

// CreateUser adds a user to the caller's organization and returns their
// token, shown once. Owners and aura owners may add users; only owners may
// add owners.
func (s *Service) CreateUser(ctx context.Context, c Caller, email, role string) (User, string, error) {
	u, err := c.manager("add users")
	if err != nil {
		return User{}, "", err
	}
	if err := checkRole(role); err != nil {
		return User{}, "", err
	}
	if role == RoleOwner && u.Role != RoleOwner {
		return User{}, "", errorf(KindForbidden, "only an Organization Owner may add another owner")
	}
	email, err = checkEmail(email)
	if err != nil {
		return User{}, "", err
	}
	token := newToken(userTokenPrefix)
	nu := s.withFirstToken(store.User{ID: newID("usr"), OrgID: u.OrgID, Email: email, Role: role, CreatedAt: s.now().UTC()}, token)
	if err := s.store.CreateUser(ctx, nu, u.ID); err != nil {
		return User{}, "", s.conflict(err, "a user with email %q already exists", email)
	}
	return *userOf(nu), token, nil
}

// ListUsers lists the caller's organization's users.
func (s *Service) ListUsers(ctx context.Context, c Caller) ([]User, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	users, err := s.store.ListUsers(ctx, u.OrgID)
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(users, func(u store.User) User { return *userOf(u) }), nil
}

// DeleteUser removes a user; the keys they created become orphaned.
func (s *Service) DeleteUser(ctx context.Context, c Caller, id string) error {
	u, err := c.manager("remove users")
	if err != nil {
		return err
	}
	if id == u.ID {
		return errorf(KindConflict, "you cannot remove yourself")
	}
	target, err := s.store.GetUser(ctx, u.OrgID, id)
	if err != nil {
		return s.notFound(err, "user %s not found", id)
	}
	if target.Role == RoleOwner && u.Role != RoleOwner {
		return errorf(KindForbidden, "only an Organization Owner may remove an owner")
	}
	_, err = s.store.DeleteUser(ctx, u.OrgID, id, u.ID, s.now().UTC())
	return s.notFound(err, "user %s not found", id)
}
