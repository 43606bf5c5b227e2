package keyservice

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// Limits are what a key's sidecars enforce: a rate limit and the client
// networks the key may be used from. The zero value limits nothing.
type Limits = store.Limits

// RateLimit is Requests per Per, with a burst of Requests.
type RateLimit = store.RateLimit

// Bounds of a key's limits.
const (
	// MaxRateRequests bounds RateLimit.Requests: a limit above it limits
	// nothing a sidecar can serve, and is most likely a typo.
	MaxRateRequests = 1_000_000
	// MaxAllowedCIDRs bounds the networks of one key: every request the
	// key makes is checked against each of them.
	MaxAllowedCIDRs = 32
)

// ParseRatePer reads a rate limit's period as the API spells it: "1s",
// "1m" or "1h".
func ParseRatePer(s string) (time.Duration, error) {
	switch s {
	case "1s":
		return time.Second, nil
	case "1m":
		return time.Minute, nil
	case "1h":
		return time.Hour, nil
	}
	return 0, errorf(KindInvalid, `rate_limit.per must be "1s", "1m" or "1h"`)
}

// RatePerName spells a rate limit's period as the API does.
func RatePerName(d time.Duration) string {
	switch d {
	case time.Minute:
		return "1m"
	case time.Hour:
		return "1h"
	}
	return "1s"
}

// checkLimits checks limits given by a caller and returns them in the form
// stored: networks in canonical CIDR form, in the order given, without
// repeats.
func checkLimits(l Limits) (Limits, error) {
	if r := l.RateLimit; r != nil {
		if r.Requests < 1 || r.Requests > MaxRateRequests {
			return Limits{}, errorf(KindInvalid, "rate_limit.requests must be from 1 to %d", MaxRateRequests)
		}
		if r.Per != time.Second && r.Per != time.Minute && r.Per != time.Hour {
			return Limits{}, errorf(KindInvalid, `rate_limit.per must be "1s", "1m" or "1h"`)
		}
		rl := *r
		l.RateLimit = &rl
	}
	if len(l.AllowedCIDRs) > MaxAllowedCIDRs {
		return Limits{}, errorf(KindInvalid, "allowed_cidrs may hold at most %d networks", MaxAllowedCIDRs)
	}
	var nets []string
	for _, s := range l.AllowedCIDRs {
		p, err := ParseCIDR(s)
		if err != nil {
			return Limits{}, err
		}
		if !slices.Contains(nets, p.String()) {
			nets = append(nets, p.String())
		}
	}
	l.AllowedCIDRs = nets
	return l, nil
}

// ParseCIDR reads one allowed network: a CIDR range such as 10.0.0.0/8 or
// 2001:db8::/32, or a single address (a /32 or /128). A range with bits set
// past its prefix (10.0.0.1/8) is refused rather than guessed at: the
// writer may have meant the one address, or the whole network.
func ParseCIDR(s string) (netip.Prefix, error) {
	bad := func(why string) (netip.Prefix, error) {
		if len(s) > 64 {
			s = s[:64] + "…"
		}
		return netip.Prefix{}, errorf(KindInvalid, "allowed_cidrs: %q %s", s, why)
	}
	var p netip.Prefix
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return bad("has a zone; give an address or CIDR range without one")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	} else if p, err = netip.ParsePrefix(s); err != nil {
		return bad("is not a CIDR range (such as 10.0.0.0/8) or an IP address")
	}
	switch {
	case p.Addr().Is4In6():
		return bad("is an IPv4-mapped IPv6 range; write it as IPv4")
	case p.Masked() != p:
		return bad(fmt.Sprintf("has bits set past its /%d; did you mean %s?", p.Bits(), p.Masked()))
	}
	return p, nil
}

// KeyUpdate changes a key's limits. A field whose Set flag is false is
// left as it is; set with a nil or empty value, it is removed.
type KeyUpdate struct {
	SetRateLimit    bool
	RateLimit       *RateLimit
	SetAllowedCIDRs bool
	AllowedCIDRs    []string
}

// UpdateKey changes the limits of a live key of the caller's organization.
// Whoever may revoke an active key may change its limits. The change is
// audited and announced on the app's feed (key.updated), from which the
// sidecars drop what they cached of the key.
func (s *Service) UpdateKey(ctx context.Context, c Caller, id string, up KeyUpdate) (Key, error) {
	u, err := c.user()
	if err != nil {
		return Key{}, err
	}
	if !up.SetRateLimit && !up.SetAllowedCIDRs {
		return Key{}, errorf(KindBadRequest, "nothing to change: give rate_limit, allowed_cidrs or both (null removes one)")
	}
	// Check what was given before the store is asked, so a bad value is a
	// 422 whatever the key.
	given := Limits{RateLimit: up.RateLimit, AllowedCIDRs: up.AllowedCIDRs}
	if given, err = checkLimits(given); err != nil {
		return Key{}, err
	}
	now := s.now().UTC()
	k, err := s.store.UpdateKeyLimits(ctx, u.OrgID, id, u.ID, func(old Limits) (Limits, error) {
		if up.SetRateLimit {
			old.RateLimit = given.RateLimit
		}
		if up.SetAllowedCIDRs {
			old.AllowedCIDRs = given.AllowedCIDRs
		}
		return old, nil
	}, now)
	switch {
	case err == nil:
		return keyOf(k, now), nil
	case errors.Is(err, store.ErrOrphaned):
		return Key{}, &Error{Kind: KindConflict, Message: fmt.Sprintf("key %s is orphaned: it cannot authenticate, so its limits cannot be changed", id), Err: err}
	case errors.Is(err, store.ErrKeyExpired):
		return Key{}, &Error{Kind: KindConflict, Message: fmt.Sprintf("key %s has expired: its limits cannot be changed", id), Err: err}
	}
	return Key{}, s.notFound(err, "key %s not found", id)
}
