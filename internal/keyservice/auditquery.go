package keyservice

import (
	"context"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// AuditQuery selects audit records: by action, actor (a user id, "admin"
// or "system"), app (the app and its keys), a time range [Since, Until),
// key (the records about it; see KeyHistory), and a page: records older
// than the id Before, Limit of them.
type AuditQuery struct {
	Action, Actor, AppID string
	KeyID                string
	Since, Until         time.Time
	Before               int64
	Limit                int
}

// ListAuditWhere returns the caller's organization's audit records that q
// selects, newest first (owners and aura owners).
func (s *Service) ListAuditWhere(ctx context.Context, c Caller, q AuditQuery) ([]AuditRecord, error) {
	if q.Limit < 1 || q.Limit > MaxAuditLimit {
		return nil, errorf(KindBadRequest, "limit must be a number from 1 to %d", MaxAuditLimit)
	}
	u, err := c.manager("read the audit log")
	if err != nil {
		return nil, err
	}
	recs, err := s.store.ListAuditWhere(ctx, u.OrgID, store.AuditFilter{Action: q.Action, Actor: q.Actor, AppID: q.AppID, KeyID: q.KeyID,
		Since: q.Since, Until: q.Until, Before: q.Before, Limit: q.Limit})
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(recs, func(a store.Audit) AuditRecord {
		return AuditRecord{ID: a.ID, At: a.At, Actor: a.Actor, Action: a.Action, Target: a.Target, Detail: a.Detail}
	}), nil
}

// AuditActions lists the actions the caller's organization's audit log
// holds (owners and aura owners).
func (s *Service) AuditActions(ctx context.Context, c Caller) ([]string, error) {
	u, err := c.manager("read the audit log")
	if err != nil {
		return nil, err
	}
	acts, err := s.store.AuditActions(ctx, u.OrgID)
	return acts, s.storeErr(err)
}

// KeyHistory returns the audit records about a key of the caller's
// organization, newest first, at most limit: its creation, limit changes,
// roll (on both keys' sides), revocation, look-ups, leak reports and the
// secrets saved with it. It follows the audit log's rule, with one
// opening: owners and aura owners read any key's history; a member reads
// the history of the keys they created, and no other (forbidden). Another
// organization's key is not found, as one that does not exist.
func (s *Service) KeyHistory(ctx context.Context, c Caller, keyID string, limit int) ([]AuditRecord, error) {
	if limit < 1 || limit > MaxAuditLimit {
		return nil, errorf(KindBadRequest, "limit must be a number from 1 to %d", MaxAuditLimit)
	}
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	k, err := s.store.GetKey(ctx, u.OrgID, keyID)
	if err != nil {
		return nil, s.notFound(err, "key %s not found", keyID)
	}
	if !CanReadKeyHistory(u.Role, u.ID, k.CreatedBy) {
		return nil, errorf(KindForbidden, "only an Organization Owner or Aura Owner may read the history of a key created by someone else")
	}
	recs, err := s.store.ListAuditWhere(ctx, u.OrgID, store.AuditFilter{KeyID: k.ID, Limit: limit})
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(recs, func(a store.Audit) AuditRecord {
		return AuditRecord{ID: a.ID, At: a.At, Actor: a.Actor, Action: a.Action, Target: a.Target, Detail: a.Detail}
	}), nil
}

// CanReadKeyHistory reports whether a user of role may read the history of
// a key created by creator: managers any key's, a member their own keys'.
func CanReadKeyHistory(role, userID, creator string) bool {
	return CanRevokeOrphaned(role) || userID == creator
}
