package keyservice

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/store"
)

// Verify answer codes.
const (
	CodeValid     = "VALID"
	CodeMalformed = "MALFORMED"
	CodeNotFound  = "NOT_FOUND"
	CodeExpired   = "EXPIRED"
	CodeRevoked   = "REVOKED"
	CodeOrphaned  = "ORPHANED"
	CodeWrongApp  = "WRONG_APP"
)

// Verdict is the answer to a verify call.
type Verdict struct {
	Valid     bool
	Code      string
	KeyID     string
	KeyName   string
	AppID     string
	ExpiresAt *time.Time
	// Limits are the key's, for the sidecar to enforce; set with a valid
	// verdict only.
	Limits Limits
}

// Verify checks a key for the app whose verifier token the caller holds.
// A key of another app of the same organization answers WRONG_APP before
// anything else is said about it, so one app's sidecar learns nothing of
// another app's keys; a key of another organization answers NOT_FOUND, as
// a key that does not exist, so a verifier learns nothing of other tenants.
func (s *Service) Verify(ctx context.Context, c Caller, key string) (Verdict, error) {
	if c.App == nil {
		return Verdict{}, errorf(KindForbidden, "verify needs an app's verifier token")
	}
	now := s.now()
	v, err := s.verify(ctx, c, key, now)
	if err == nil && !v.Valid && v.Code != CodeExpired && v.Code != CodeRevoked && v.Code != CodeOrphaned {
		// Guesses land here: malformed, unknown or other apps' keys. Past the
		// app's failure budget they get 429 instead of an answer, so a
		// guessing client learns nothing while good keys, and keys that once
		// were good (expired, revoked, orphaned), are answered as ever.
		if ok, wait := s.throttle.allow(c.App.ID, now); !ok {
			return Verdict{}, &Error{Kind: KindRateLimited, Message: "too many failed verifications for this app; slow down",
				RetryAfter: max(wait, time.Second)}
		}
	}
	return v, err
}

func (s *Service) verify(ctx context.Context, c Caller, key string, now time.Time) (Verdict, error) {
	if apikey.Parse(key) != nil {
		return Verdict{Code: CodeMalformed}, nil
	}
	cands := s.hasher.Candidates(key)
	hashes := make([]string, len(cands))
	for i, h := range cands {
		hashes[i] = h.String()
	}
	k, err := s.store.KeyForVerify(ctx, hashes...)
	if errors.Is(err, store.ErrNotFound) {
		return Verdict{Code: CodeNotFound}, nil
	}
	if err != nil {
		return Verdict{}, s.storeErr(err)
	}
	switch {
	case k.OrgID != c.App.OrgID:
		// Another tenant's key is, to this verifier, a key that does not
		// exist: WRONG_APP would tell a sidecar, or whoever holds its
		// token, that a guessed or leaked key is live somewhere else.
		return Verdict{Code: CodeNotFound}, nil
	case k.AppID != c.App.ID:
		return Verdict{Code: CodeWrongApp}, nil
	}
	exp := k.ExpiresAt
	v := Verdict{KeyID: k.ID, KeyName: k.Name, AppID: k.AppID, ExpiresAt: &exp}
	switch keyState(k, now) {
	case StateRevoked:
		v.Code = CodeRevoked
	case StateOrphaned:
		v.Code = CodeOrphaned
	case StateExpired:
		v.Code = CodeExpired
	default:
		v.Valid, v.Code, v.Limits = true, CodeValid, k.Limits
		s.usage.mark(k, now)
	}
	return v, nil
}

// verifierTTL bounds how long a verifier token's app is remembered without
// asking the store: an app deleted through another replica looks live to
// this one at most this long (its keys answer ORPHANED at once all the same).
// Deletes through this replica are seen at once.
const verifierTTL = time.Second

// maxVerifiers bounds the verifier cache; it is emptied when full.
const maxVerifiers = 4096

// verifierCache keeps the apps of recently seen verifier tokens, by token
// hash, so that a sidecar's verify calls skip one of their two lookups.
// Only tokens that resolved to an app are kept: unknown ones always go to
// the store, so a flood of them cannot fill it.
type verifierCache struct {
	mu      sync.RWMutex
	entries map[string]verifierEntry
}

type verifierEntry struct {
	app      App
	tokenID  string
	expires  *time.Time // the token's own expiry, checked at every use
	lastUsed *time.Time // as the store had it
	until    time.Time  // on the monotonic clock, not the injected one: a frozen test clock must not make an entry immortal
}

func newVerifierCache() *verifierCache {
	return &verifierCache{entries: make(map[string]verifierEntry)}
}

func (c *verifierCache) get(tokenHash string) (verifierEntry, bool) {
	c.mu.RLock()
	e, ok := c.entries[tokenHash]
	c.mu.RUnlock()
	if !ok || !time.Now().Before(e.until) {
		return verifierEntry{}, false
	}
	return e, true
}

func (c *verifierCache) put(tokenHash string, e verifierEntry) {
	e.until = time.Now().Add(verifierTTL)
	c.mu.Lock()
	if len(c.entries) >= maxVerifiers {
		clear(c.entries)
	}
	c.entries[tokenHash] = e
	c.mu.Unlock()
}

// forget drops a token that was just retired or shortened.
func (c *verifierCache) forget(tokenHash string) {
	c.mu.Lock()
	delete(c.entries, tokenHash)
	c.mu.Unlock()
}

// forgetApp drops the tokens of an app that was just deleted.
func (c *verifierCache) forgetApp(appID string) {
	c.mu.Lock()
	for h, e := range c.entries {
		if e.app.ID == appID {
			delete(c.entries, h)
		}
	}
	c.mu.Unlock()
}
