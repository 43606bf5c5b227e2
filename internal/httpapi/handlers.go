package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// Wire shapes. Times are RFC 3339 in UTC; absent times are null.
// internal/client repeats them on purpose (it depends on the API alone);
// api/openapi.yaml is the contract both are tested against.

type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	Token     string    `json:"token,omitempty"`
}

type appJSON struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Kind          string    `json:"kind"`
	CreatedAt     time.Time `json:"created_at"`
	CreatedBy     string    `json:"created_by"`
	ActiveKeys    *int      `json:"active_keys,omitempty"`
	OrphanedKeys  *int      `json:"orphaned_keys,omitempty"`
	VerifierToken string    `json:"verifier_token,omitempty"`
}

type keyJSON struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	AppID          string     `json:"app_id"`
	AppName        string     `json:"app_name"`
	Prefix         string     `json:"prefix"`
	State          string     `json:"state"`
	OrphanReason   *string    `json:"orphan_reason"`
	ExpiresAt      time.Time  `json:"expires_at"`
	CreatedAt      time.Time  `json:"created_at"`
	CreatedBy      string     `json:"created_by"`
	CreatedByEmail string     `json:"created_by_email"`
	LastUsedAt     *time.Time `json:"last_used_at"`
	RolledFrom     string     `json:"rolled_from,omitempty"`
	RolledTo       string     `json:"rolled_to,omitempty"`
	LeakedAt       *time.Time `json:"leaked_at"`
	// Only a revoked key has these, and only a lookup shows one.
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	Key          string     `json:"key,omitempty"`
	SecretName   string     `json:"secret_name,omitempty"`
	// The key's limits: rate_limit null and allowed_cidrs [] when none.
	RateLimit    *rateLimitJSON `json:"rate_limit"`
	AllowedCIDRs []string       `json:"allowed_cidrs"`
}

type secretJSON struct {
	Name      string    `json:"name"`
	Value     *string   `json:"value,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

func toUser(u keyservice.User, token string) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Role: u.Role, CreatedAt: u.CreatedAt, Token: token}
}

func toApp(a keyservice.App, withCounts bool) appJSON {
	out := appJSON{ID: a.ID, Name: a.Name, Kind: a.Kind, CreatedAt: a.CreatedAt, CreatedBy: a.CreatedBy}
	if withCounts {
		active, orphaned := a.ActiveKeys, a.OrphanedKeys
		out.ActiveKeys, out.OrphanedKeys = &active, &orphaned
	}
	return out
}

func toKey(k keyservice.Key) keyJSON {
	out := keyJSON{ID: k.ID, Name: k.Name, AppID: k.AppID, AppName: k.AppName, Prefix: k.Prefix,
		State: k.State, ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt,
		CreatedBy: k.CreatedBy, CreatedByEmail: k.CreatorEmail, LastUsedAt: k.LastUsedAt, RolledFrom: k.RolledFrom, RolledTo: k.RolledTo,
		LeakedAt: k.LeakedAt, RevokedAt: k.RevokedAt, RevokeReason: k.RevokeReason,
		RateLimit: rateLimitOut(k.Limits.RateLimit), AllowedCIDRs: cidrsOut(k.Limits.AllowedCIDRs)}
	if k.OrphanReason != "" {
		r := k.OrphanReason
		out.OrphanReason = &r
	}
	return out
}

func toSecret(s keyservice.SecretInfo) secretJSON {
	return secretJSON{Name: s.Name, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy}
}

func (s *Server) createOrg(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name       string `json:"name"`
		OwnerEmail string `json:"owner_email"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	res, err := s.svc.CreateOrg(r.Context(), caller(r), req.Name, req.OwnerEmail)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": res.Org.ID, "name": res.Org.Name, "created_at": res.Org.CreatedAt,
		"owner": toUser(res.Owner, res.OwnerToken),
	})
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	u, org, err := s.svc.Me(r.Context(), caller(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": u.ID, "email": u.Email, "role": u.Role, "org_id": org.ID, "org_name": org.Name})
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	u, token, err := s.svc.CreateUser(r.Context(), caller(r), req.Email, req.Role)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toUser(u, token))
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.svc.ListUsers(r.Context(), caller(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := each(users, func(u keyservice.User) userJSON { return toUser(u, "") })
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.svc.DeleteUser(r.Context(), caller(r), r.PathValue("id")))
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	res, err := s.svc.CreateApp(r.Context(), caller(r), req.Name, req.Kind)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := toApp(res.App, false)
	out.VerifierToken = res.VerifierToken
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	apps, err := s.svc.ListApps(r.Context(), caller(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := each(apps, func(a keyservice.App) appJSON { return toApp(a, true) })
	writeJSON(w, http.StatusOK, map[string]any{"apps": out})
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	a, err := s.svc.GetApp(r.Context(), caller(r), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toApp(a, true))
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.svc.DeleteApp(r.Context(), caller(r), r.PathValue("id")))
}

// expiresAt reads the expires_at a key create or roll requires, or
// answers why it cannot.
func expiresAt(w http.ResponseWriter, raw *string) (time.Time, bool) {
	if raw == nil {
		writeErr(w, http.StatusUnprocessableEntity, "invalid_argument", "expires_at is required")
		return time.Time{}, false
	}
	exp, err := time.Parse(time.RFC3339, *raw)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "bad_request", "expires_at must be an RFC 3339 time such as 2027-01-31T00:00:00Z")
		return time.Time{}, false
	}
	return exp, true
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name         string  `json:"name"`
		ExpiresAt    *string `json:"expires_at"`
		SaveAsSecret string  `json:"save_as_secret"`
		// Optional limits; null or absent is none.
		RateLimit    *rateLimitJSON `json:"rate_limit"`
		AllowedCIDRs []string       `json:"allowed_cidrs"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	exp, ok := expiresAt(w, req.ExpiresAt)
	if !ok {
		return
	}
	rl, err := rateLimitIn(req.RateLimit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.svc.CreateKey(r.Context(), caller(r), r.PathValue("id"), keyservice.CreateKeyRequest{
		Name: req.Name, ExpiresAt: exp, SaveAsSecret: req.SaveAsSecret,
		Limits: keyservice.Limits{RateLimit: rl, AllowedCIDRs: req.AllowedCIDRs},
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := toKey(res.Key)
	out.Key, out.SecretName = res.Plain, res.SecretName
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listAppKeys(w http.ResponseWriter, r *http.Request) {
	s.writeKeys(w, r, r.PathValue("id"))
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) { s.writeKeys(w, r, "") }

func (s *Server) writeKeys(w http.ResponseWriter, r *http.Request, appID string) {
	q, err := s.keyQuery(r, appID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	keys, err := s.svc.ListKeysWhere(r.Context(), caller(r), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := each(keys, toKey)
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// keyQuery reads what a GET of keys asks for: a state, leaked=true|false,
// and expiring_within (the active keys that expire within it).
func (s *Server) keyQuery(r *http.Request, appID string) (keyservice.KeyQuery, error) {
	v := r.URL.Query()
	q := keyservice.KeyQuery{AppID: appID, State: v.Get("state")}
	switch leaked := v.Get("leaked"); leaked {
	case "":
	case "true", "false":
		b := leaked == "true"
		q.Leaked = &b
	default:
		return q, &keyservice.Error{Kind: keyservice.KindBadRequest, Message: "leaked must be true or false"}
	}
	if within := v.Get("expiring_within"); within != "" {
		d, err := s.svc.ParseExpiringWithin(within)
		if err != nil {
			return q, err
		}
		q.ExpiringWithin = d
	}
	return q, nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.svc.RevokeKey(r.Context(), caller(r), r.PathValue("id")))
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	if !s.readBody(w, r, &req) {
		return
	}
	sec, err := s.svc.CreateSecret(r.Context(), caller(r), req.Name, req.Value)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toSecret(sec))
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	secs, err := s.svc.ListSecrets(r.Context(), caller(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := each(secs, toSecret)
	writeJSON(w, http.StatusOK, map[string]any{"secrets": out})
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	sec, value, err := s.svc.ReadSecret(r.Context(), caller(r), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := toSecret(sec)
	out.Value = &value
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.svc.DeleteSecret(r.Context(), caller(r), r.PathValue("name")))
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	// The service refuses a limit out of range; a limit that is no number
	// is refused here with the same words.
	limit := keyservice.DefaultAuditLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit must be a number from 1 to %d", keyservice.MaxAuditLimit))
			return
		}
		limit = n
	}
	recs, err := s.svc.ListAudit(r.Context(), caller(r), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type auditJSON struct {
		ID     int64     `json:"id"`
		At     time.Time `json:"at"`
		Actor  string    `json:"actor"`
		Action string    `json:"action"`
		Target string    `json:"target"`
		Detail string    `json:"detail"`
	}
	out := each(recs, func(a keyservice.AuditRecord) auditJSON {
		return auditJSON{a.ID, a.At, a.Actor, a.Action, a.Target, a.Detail}
	})
	writeJSON(w, http.StatusOK, map[string]any{"audit": out})
}
