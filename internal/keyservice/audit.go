package keyservice

import (
	"context"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// Bounds of ListAudit's limit: one page is at most MaxAuditLimit records,
// DefaultAuditLimit when the caller does not say.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditRecord is an entry of an organization's audit log. It repeats
// store.Audit's fields on purpose: adapters see the domain's types only.
type AuditRecord struct {
	ID     int64
	At     time.Time
	Actor  string // a user id, "admin" or "system"
	Action string // e.g. "key.create", "secret.read"
	Target string // the id or name acted on
	Detail string
}

// ListAudit returns the newest limit audit records of the caller's
// organization (owners and aura owners). A limit outside 1 to
// MaxAuditLimit is refused, not clamped: a caller who asks for 5,000 and
// gets 1,000 would take them for the whole log.
func (s *Service) ListAudit(ctx context.Context, c Caller, limit int) ([]AuditRecord, error) {
	if limit < 1 || limit > MaxAuditLimit {
		return nil, errorf(KindBadRequest, "limit must be a number from 1 to %d", MaxAuditLimit)
	}
	u, err := c.manager("read the audit log")
	if err != nil {
		return nil, err
	}
	recs, err := s.store.ListAudit(ctx, u.OrgID, limit)
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(recs, func(a store.Audit) AuditRecord {
		return AuditRecord{ID: a.ID, At: a.At, Actor: a.Actor, Action: a.Action, Target: a.Target, Detail: a.Detail}
	}), nil
}
