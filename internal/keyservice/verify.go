package keyservice

import (
	"context"
	"errors"
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
}

// Verify checks a key for the app whose verifier token the caller holds.
// A key of another app answers WRONG_APP before anything else is said about
// it, so one app's sidecar learns nothing of another app's keys.
func (s *Service) Verify(ctx context.Context, c Caller, key string) (Verdict, error) {
	if c.App == nil {
		return Verdict{}, errorf(KindForbidden, "verify needs an app's verifier token")
	}
	if apikey.Parse(key) != nil {
		return Verdict{Code: CodeMalformed}, nil
	}
	cands := s.hasher.Candidates(key)
	hashes := make([]string, len(cands))
	for i, h := range cands {
		hashes[i] = h.String()
	}
	k, err := s.store.KeyByHash(ctx, hashes...)
	if errors.Is(err, store.ErrNotFound) {
		return Verdict{Code: CodeNotFound}, nil
	}
	if err != nil {
		return Verdict{}, s.storeErr(err)
	}
	if k.AppID != c.App.ID {
		return Verdict{Code: CodeWrongApp}, nil
	}
	now := s.now()
	exp := k.ExpiresAt
	v := Verdict{KeyID: k.ID, KeyName: k.Name, AppID: k.AppID, ExpiresAt: &exp}
	switch KeyState(k, now) {
	case StateRevoked:
		v.Code = CodeRevoked
	case StateOrphaned:
		v.Code = CodeOrphaned
	case StateExpired:
		v.Code = CodeExpired
	default:
		v.Valid, v.Code = true, CodeValid
		s.usage.mark(k, now)
	}
	return v, nil
}
