package keyservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/store"
)

// Key states as the API shows them.
const (
	StateActive   = "active"
	StateOrphaned = "orphaned"
	StateExpired  = "expired"
	StateRevoked  = "revoked"
)

// Why a key was orphaned.
const (
	OrphanAppDeleted     = store.OrphanAppDeleted
	OrphanCreatorDeleted = store.OrphanCreatorDeleted
)

// DefaultMaxKeyLifetime bounds how far in the future a key may expire.
const DefaultMaxKeyLifetime = 365 * 24 * time.Hour

// expiryGrace absorbs clock skew between a client that computes "365 days
// from now" and this server.
const expiryGrace = 5 * time.Minute

// Key is an API key as callers see it: its State decided here, at the
// service's clock, so every adapter shows the same. It has no hash: the
// store keeps that, and the key itself is never kept at all.
type Key struct {
	ID           string
	OrgID        string
	AppID        string
	AppName      string
	Name         string
	Prefix       string
	State        string // StateActive, StateOrphaned, StateExpired or StateRevoked
	OrphanReason string // "", OrphanAppDeleted or OrphanCreatorDeleted
	ExpiresAt    time.Time
	CreatedAt    time.Time
	CreatedBy    string
	CreatorEmail string
	LastUsedAt   *time.Time
	// ExpiringSoon is true for an active key that expires within
	// ExpiringSoonWithin: decided here, at the service's clock, so the
	// console need not do date arithmetic in a template.
	ExpiringSoon bool
	// RolledFrom is the key this one was rolled from, RolledTo the key it
	// was rolled to (it works until its ExpiresAt, the overlap's end);
	// "" when none.
	RolledFrom string
	RolledTo   string
	// LeakedAt is when a leak of the key was first reported; nil if never.
	LeakedAt *time.Time
	// RevokedAt and RevokeReason (RevokeLeaked, or "" for a revoke by a
	// user) are set for a revoked key, which only LookupKey shows.
	RevokedAt    *time.Time
	RevokeReason string
	// Limits are what the key's sidecars enforce.
	Limits Limits
}

func keyOf(k store.Key, now time.Time) Key {
	state := keyState(k, now)
	return Key{ID: k.ID, OrgID: k.OrgID, AppID: k.AppID, AppName: k.AppName, Name: k.Name, Prefix: k.Prefix,
		State: state, OrphanReason: k.OrphanReason, ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt,
		CreatedBy: k.CreatedBy, CreatorEmail: k.CreatorEmail, LastUsedAt: k.LastUsedAt,
		RolledFrom: k.RolledFrom, RolledTo: k.RolledTo, ExpiringSoon: expiringSoon(state, k.RolledTo, k.ExpiresAt, now),
		LeakedAt: k.LeakedAt, RevokedAt: k.RevokedAt, RevokeReason: k.RevokeReason, Limits: k.Limits}
}

// keyState returns the state a key is in at now.
func keyState(k store.Key, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return StateRevoked
	case k.OrphanedAt != nil:
		return StateOrphaned
	case !k.ExpiresAt.After(now):
		return StateExpired
	}
	return StateActive
}

// CreateKeyRequest asks for a new key.
type CreateKeyRequest struct {
	Name      string
	ExpiresAt time.Time
	// SaveAsSecret, when set, names a new secret that receives the key
	// instead of the answer.
	SaveAsSecret string
	// Limits, optional, are what the key's sidecars enforce.
	Limits Limits
}

// KeyCreated is the answer to CreateKey. Plain is the key itself, set only
// when it was not saved as a secret; it is never available again.
type KeyCreated struct {
	Key        Key
	Plain      string
	SecretName string
}

// CreateKey creates a key for an app of the caller's organization.
func (s *Service) CreateKey(ctx context.Context, c Caller, appID string, req CreateKeyRequest) (KeyCreated, error) {
	u, err := c.user()
	if err != nil {
		return KeyCreated{}, err
	}
	name, err := checkName("name", req.Name)
	if err != nil {
		return KeyCreated{}, err
	}
	now := s.now().UTC()
	if err := s.checkExpiry(req.ExpiresAt, now); err != nil {
		return KeyCreated{}, err
	}
	if req.SaveAsSecret != "" && !validSecretName(req.SaveAsSecret) {
		return KeyCreated{}, errorf(KindInvalid, secretNameRule)
	}
	limits, err := checkLimits(req.Limits)
	if err != nil {
		return KeyCreated{}, err
	}
	app, err := s.store.LiveApp(ctx, u.OrgID, appID)
	if err != nil {
		return KeyCreated{}, s.notFound(err, "app %s not found", appID)
	}
	plain, err := apikey.Generate()
	if err != nil {
		return KeyCreated{}, err
	}
	k := store.Key{
		ID: newID("key"), OrgID: u.OrgID, AppID: app.ID, AppName: app.Name, Name: name, Prefix: apikey.DisplayPrefix(plain),
		Hash: s.hasher.Hash(plain).String(), ExpiresAt: req.ExpiresAt.UTC().Truncate(time.Microsecond), CreatedAt: now,
		CreatedBy: u.ID, CreatorEmail: u.Email, Limits: limits,
	}
	var secret *store.Secret
	if req.SaveAsSecret != "" {
		sealed, err := s.keys.seal(u.OrgID, req.SaveAsSecret, []byte(plain))
		if err != nil {
			return KeyCreated{}, err
		}
		secret = &store.Secret{OrgID: u.OrgID, Name: req.SaveAsSecret, Ciphertext: sealed, CreatedAt: now, CreatedBy: u.ID}
	}
	if err := s.store.CreateKey(ctx, k, secret); err != nil {
		switch {
		case errors.Is(err, store.ErrSecretConflict):
			return KeyCreated{}, &Error{Kind: KindConflict, Message: fmt.Sprintf("a secret named %q already exists", req.SaveAsSecret), Err: err}
		case errors.Is(err, store.ErrConflict):
			return KeyCreated{}, s.conflict(err, "app %s already has a key named %q", app.ID, name)
		}
		return KeyCreated{}, s.notFound(err, "app %s not found", appID)
	}
	out := KeyCreated{Key: keyOf(k, now)}
	if secret != nil {
		out.SecretName = secret.Name
	} else {
		out.Plain = plain
	}
	return out, nil
}

// checkExpiry checks a new key's expiry: required, in the future, and
// within the longest lifetime allowed.
func (s *Service) checkExpiry(exp, now time.Time) error {
	switch {
	case exp.IsZero():
		return errorf(KindInvalid, "expires_at is required")
	case !exp.After(now):
		return errorf(KindInvalid, "expires_at must be in the future")
	case exp.After(now.Add(s.maxLifetime + expiryGrace)):
		return errorf(KindInvalid, "expires_at may be at most %d days from now", int(s.maxLifetime.Hours()/24))
	}
	return nil
}

// keySelects are the states ListKeys may be asked for, and the rows that
// are in them.
var keySelects = map[string]store.KeySelect{
	"":            store.AnyKey,
	StateActive:   store.UnexpiredKeys,
	StateExpired:  store.ExpiredKeys,
	StateOrphaned: store.OrphanedKeys,
}

// ListKeys lists the caller's organization's keys, of one app when appID is
// set, in one state when state is set ("active", "orphaned" or "expired").
func (s *Service) ListKeys(ctx context.Context, c Caller, appID, state string) ([]Key, error) {
	return s.ListKeysWhere(ctx, c, KeyQuery{AppID: appID, State: state})
}

// KeyQuery selects keys in ListKeysWhere; empty fields select everything
// that is not revoked.
type KeyQuery struct {
	AppID string
	State string // "", "active", "orphaned" or "expired"
	// Leaked, when set, keeps only keys reported leaked (true) or only
	// keys never reported (false).
	Leaked *bool
	// ExpiringWithin, when set, keeps only the active keys, not rolled
	// away, that expire within it from now: as ParseExpiringWithin allows.
	ExpiringWithin time.Duration
}

// ListKeysWhere lists the caller's organization's keys that q selects.
func (s *Service) ListKeysWhere(ctx context.Context, c Caller, q KeyQuery) ([]Key, error) {
	sel, ok := keySelects[q.State]
	if !ok {
		return nil, errorf(KindInvalid, "state must be active, orphaned or expired")
	}
	f := store.KeyFilter{AppID: q.AppID, Select: sel, Now: s.now(), Leaked: q.Leaked}
	if q.ExpiringWithin != 0 {
		if q.ExpiringWithin < 0 || q.ExpiringWithin > s.maxLifetime {
			return nil, errorf(KindBadRequest, "expiring_within must be more than zero and at most %dd", int64(s.maxLifetime/(24*time.Hour)))
		}
		if q.State != "" && q.State != StateActive {
			return nil, errorf(KindBadRequest, "expiring_within lists active keys: use it without state, or with state=active")
		}
		f.Select, f.ExpiresBy = store.UnexpiredKeys, f.Now.Add(q.ExpiringWithin)
	}
	return s.listKeys(ctx, c, f)
}

// listKeys lists the keys f selects in the caller's organization.
func (s *Service) listKeys(ctx context.Context, c Caller, f store.KeyFilter) ([]Key, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	f.OrgID = u.OrgID
	keys, err := s.store.ListKeys(ctx, f)
	if err != nil {
		return nil, s.storeErr(err)
	}
	if f.AppID != "" && len(keys) == 0 {
		// An app deleted since still lists its orphaned keys; only an app
		// that never was in this organization is unknown.
		if _, err := s.store.GetApp(ctx, u.OrgID, f.AppID, f.Now); err != nil {
			return nil, s.notFound(err, "app %s not found", f.AppID)
		}
	}
	return each(s.usage.overlay(keys), func(k store.Key) Key { return keyOf(k, f.Now) }), nil
}

// RevokeKey revokes a key of the caller's organization. Orphaned keys may be
// revoked only by an Organization Owner or Aura Owner.
func (s *Service) RevokeKey(ctx context.Context, c Caller, id string) error {
	u, err := c.user()
	if err != nil {
		return err
	}
	_, err = s.store.RevokeKey(ctx, u.OrgID, id, u.ID, CanRevokeOrphaned(u.Role), s.now().UTC())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrOrphaned):
		return &Error{Kind: KindForbidden, Message: "only an Organization Owner or Aura Owner may revoke an orphaned key", Err: err}
	}
	return s.notFound(err, "key %s not found", id)
}
