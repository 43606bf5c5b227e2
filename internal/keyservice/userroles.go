package keyservice

import (
	"context"
)

// ChangeUserRole gives a user of the caller's organization another role.
// Owners and aura owners may change roles; only an owner may make an owner
// or change an owner's role; nobody changes their own (an organization
// must not lose its last owner by a slip of the hand).
func (s *Service) ChangeUserRole(ctx context.Context, c Caller, id, role string) (User, error) {
	u, err := c.manager("change roles")
	if err != nil {
		return User{}, err
	}
	if err := checkRole(role); err != nil {
		return User{}, err
	}
	if id == u.ID {
		return User{}, errorf(KindConflict, "you cannot change your own role")
	}
	target, err := s.store.GetUser(ctx, u.OrgID, id)
	if err != nil {
		return User{}, s.notFound(err, "user %s not found", truncate(id, 64))
	}
	if (role == RoleOwner || target.Role == RoleOwner) && u.Role != RoleOwner {
		return User{}, errorf(KindForbidden, "only an Organization Owner may make an owner or change an owner's role")
	}
	if target.Role == role {
		return *userOf(target), nil
	}
	if err := s.store.SetUserRole(ctx, u.OrgID, id, role, u.ID, s.now().UTC()); err != nil {
		return User{}, s.notFound(err, "user %s not found", truncate(id, 64))
	}
	target.Role = role
	return *userOf(target), nil
}
