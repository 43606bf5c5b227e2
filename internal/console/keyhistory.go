package console

import (
	"net/http"
	"net/url"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// keyHistorySize is how many audit entries a key's page shows; the rest
// are on the Audit log page, filtered for the key.
const keyHistorySize = 50

// keyHistory is the History section of a key's page: the audit entries
// about the key, newest first.
type keyHistory struct {
	Rows []historyRow
	// More says older entries exist than the page shows.
	More bool
	// AuditURL is the Audit log filtered for the key: for those who may
	// read the audit log, "" for others.
	AuditURL string
	// Hidden says the caller may not read this key's history (a member,
	// on a key someone else created); Unread that it could not be read.
	Hidden, Unread bool
}

// historyRow is an audit entry in the key's words.
type historyRow struct {
	auditRow
	What string
}

// historyWords names the audit actions a key's history holds.
var historyWords = map[string]string{
	"key.create":    "Created",
	"key.update":    "Limits changed",
	"key.roll":      "Rolled",
	"key.revoke":    "Revoked",
	"key.orphan":    "Orphaned",
	"key.lookup":    "Looked up",
	"key.leaked":    "Reported leaked",
	"secret.create": "Saved as secret",
	"secret.update": "Secret updated",
}

// keyHistory reads a key's history as the caller may see it (see
// keyservice.KeyHistory: managers any key's, members their own keys').
// It never fails the page: the key's fields and chart still show.
func (c *console) keyHistory(r *http.Request, req *request, keyID string) keyHistory {
	ctx := r.Context()
	var h keyHistory
	recs, err := c.svc.KeyHistory(ctx, req.caller, keyID, keyHistorySize+1)
	if keyservice.KindOf(err) == keyservice.KindForbidden {
		h.Hidden = true
		return h
	}
	var users []keyservice.User
	if err == nil {
		users, err = c.svc.ListUsers(ctx, req.caller)
	}
	if err != nil {
		c.log.Warn("console: read a key's history", "key", keyID, "err", err)
		h.Unread = true
		return h
	}
	if len(recs) > keyHistorySize {
		recs, h.More = recs[:keyHistorySize], true
	}
	emails := make(map[string]string, len(users))
	for _, u := range users {
		emails[u.ID] = u.Email
	}
	for _, a := range recs {
		what, ok := historyWords[a.Action]
		if !ok {
			what = a.Action
		}
		h.Rows = append(h.Rows, historyRow{auditRow: auditRowOf(a, emails, nil), What: what})
	}
	if keyservice.CanRevokeOrphaned(req.user.Role) {
		h.AuditURL = "/audit?" + url.Values{"key": {keyID}}.Encode()
	}
	return h
}
