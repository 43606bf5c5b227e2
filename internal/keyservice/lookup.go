package keyservice

import (
	"context"
	"errors"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/store"
)

// LookupKey tells an Organization Owner or Aura Owner which of their
// organization's keys a key found somewhere (a leak, a log) is, whatever
// its state, revoked included. A key of another organization is not
// found, exactly as a key that does not exist: the answer says nothing of
// other tenants. Members are refused before the key is read.
func (s *Service) LookupKey(ctx context.Context, c Caller, key string) (Key, error) {
	u, err := c.manager("look up a key")
	if err != nil {
		return Key{}, err
	}
	if apikey.Parse(key) != nil {
		return Key{}, errorf(KindInvalid, "key is not an appkeys API key: it must be cak_ followed by %d letters and digits with a valid checksum", apikey.Len-len(apikey.Prefix))
	}
	cands := s.hasher.Candidates(key)
	hashes := make([]string, len(cands))
	for i, h := range cands {
		hashes[i] = h.String()
	}
	notFound := errorf(KindNotFound, "no key of your organization matches")
	k, err := s.store.KeyByHash(ctx, hashes...)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && k.OrgID != u.OrgID:
		// Audited too, naming nothing: neither the string asked about nor
		// another organization's key.
		return Key{}, s.auditLookup(ctx, u, "", notFound)
	case err != nil:
		return Key{}, s.storeErr(err)
	}
	if err := s.auditLookup(ctx, u, k.ID, nil); err != nil {
		return Key{}, err
	}
	return keyOf(k, s.now()), nil
}

// auditLookup records that u looked up a key (target, "" when nothing of
// theirs matched), so an organization's owners can retrace an incident;
// it answers answer unless the record could not be written.
func (s *Service) auditLookup(ctx context.Context, u *User, target string, answer error) error {
	detail := "matched a key of the organization"
	if target == "" {
		detail = "matched no key of the organization"
	}
	err := s.store.RecordAudit(ctx, store.Audit{OrgID: u.OrgID, At: s.now().UTC(), Actor: u.ID, Action: "key.lookup", Target: target, Detail: detail})
	if err != nil {
		return s.storeErr(err)
	}
	return answer
}
