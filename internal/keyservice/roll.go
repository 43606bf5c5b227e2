package keyservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/store"
)

// RollKeyRequest asks for a key to be replaced by a new one.
type RollKeyRequest struct {
	// ExpiresAt is the new key's expiry, bounded as a creation's.
	ExpiresAt time.Time
	// Overlap is how long the old key keeps working: until now+Overlap
	// (rounded up to the whole second, which is what sidecars count in), or
	// its own expiry if that is sooner. Zero revokes it at once.
	Overlap time.Duration
	// SaveAsSecret, when set, names a secret that receives the new key: a
	// new secret, or one that holds the old key.
	SaveAsSecret string
}

// KeyRolled is the answer to RollKey. Plain is the new key, set only when
// no secret received it; it is never available again.
type KeyRolled struct {
	Key Key
	// Previous is the old key after the roll: active until its ExpiresAt,
	// or revoked.
	Previous Key
	Plain    string
	// Secrets names the secrets that now hold the new key: those that held
	// the old one, and SaveAsSecret.
	Secrets []string
}

// RollKey replaces an active key of the caller's organization with a new
// key for the same app and name. Whoever may create a key for the app may
// roll it. The old key keeps working until req.Overlap has passed, or its
// own expiry if sooner: a roll never extends a key's life. Secrets holding
// the old key get the new one in the same transaction.
func (s *Service) RollKey(ctx context.Context, c Caller, id string, req RollKeyRequest) (KeyRolled, error) {
	u, err := c.user()
	if err != nil {
		return KeyRolled{}, err
	}
	now := s.now().UTC()
	if err := s.checkExpiry(req.ExpiresAt, now); err != nil {
		return KeyRolled{}, err
	}
	switch {
	case req.Overlap < 0:
		return KeyRolled{}, errorf(KindInvalid, "overlap must not be negative")
	case req.Overlap > s.maxLifetime:
		return KeyRolled{}, errorf(KindInvalid, "overlap may be at most %d days", int(s.maxLifetime.Hours()/24))
	case req.SaveAsSecret != "" && !validSecretName(req.SaveAsSecret):
		return KeyRolled{}, errorf(KindInvalid, secretNameRule)
	}
	plain, err := apikey.Generate()
	if err != nil {
		return KeyRolled{}, err
	}
	r := store.KeyRoll{
		OrgID: u.OrgID, OldID: id, RevokeOld: req.Overlap == 0, SaveAs: req.SaveAsSecret,
		OldExpiresAt: ceilSecond(now.Add(req.Overlap)),
		New: store.Key{ID: newID("key"), Prefix: apikey.DisplayPrefix(plain), Hash: s.hasher.Hash(plain).String(),
			ExpiresAt: req.ExpiresAt.UTC().Truncate(time.Microsecond), CreatedAt: now, CreatedBy: u.ID, CreatorEmail: u.Email},
		Seal: func(name string) ([]byte, error) { return s.keys.seal(u.OrgID, name, []byte(plain)) },
	}
	res, err := s.store.RollKey(ctx, r)
	if err != nil {
		return KeyRolled{}, s.rollErr(err, id, req.SaveAsSecret)
	}
	s.feed.poke()
	out := KeyRolled{Key: keyOf(res.New, now), Previous: keyOf(res.Old, now), Secrets: res.Secrets}
	if len(res.Secrets) == 0 {
		out.Plain = plain
	}
	return out, nil
}

// ceilSecond rounds t up to the whole second. Sidecars keep expiries in
// whole seconds, rounded down; an overlap that ends on a second is honoured
// to the end, not cut a fraction short.
func ceilSecond(t time.Time) time.Time {
	if f := t.Truncate(time.Second); !f.Equal(t) {
		return f.Add(time.Second)
	}
	return t
}

// rollErr names why a key could not be rolled.
func (s *Service) rollErr(err error, id, secret string) error {
	conflict := func(format string, args ...any) error {
		return &Error{Kind: KindConflict, Message: fmt.Sprintf(format, args...), Err: err}
	}
	switch {
	case errors.Is(err, store.ErrOrphaned):
		return conflict("key %s is orphaned: it cannot be rolled; revoke it and create a new key instead", id)
	case errors.Is(err, store.ErrKeyRevoked):
		return conflict("key %s is revoked: it cannot be rolled", id)
	case errors.Is(err, store.ErrKeyExpired):
		return conflict("key %s has expired: it cannot be rolled; create a new key instead", id)
	case errors.Is(err, store.ErrKeyRolled):
		return conflict("key %s was already rolled; roll the key it was rolled to instead", id)
	case errors.Is(err, store.ErrSecretConflict):
		return conflict("a secret named %q already exists and does not hold key %s; choose another name", secret, id)
	}
	return s.notFound(err, "key %s not found", id)
}
