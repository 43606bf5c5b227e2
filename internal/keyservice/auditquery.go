package keyservice

import (
	"context"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// AuditQuery selects audit records: by action, actor (a user id, "admin"
// or "system"), app (the app and its keys), a time range [Since, Until),
// and a page: records older than the id Before, Limit of them.
type AuditQuery struct {
	Action, Actor, AppID string
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
	recs, err := s.store.ListAuditWhere(ctx, u.OrgID, store.AuditFilter{Action: q.Action, Actor: q.Actor, AppID: q.AppID,
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
