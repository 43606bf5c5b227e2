package keyservice

import (
	"time"
)

// ExpiringSoonWithin is how close to its expiry an active key is "expiring
// soon": the console marks it, and the appkeys_keys_expiring gauge counts
// it under ExpiringSoonLabel.
const ExpiringSoonWithin = 7 * 24 * time.Hour

// ExpiringSoonLabel is ExpiringSoonWithin as the gauge's within label and
// the API's expiring_within say it.
const ExpiringSoonLabel = "7d"

// expiringSoon tells whether k, in state, expires within ExpiringSoonWithin
// of now. Only an active key not yet rolled is: an expired one is past it,
// an orphaned one works no more, and a rolled one's successor already
// stands, so its expiry calls for nobody to act.
func expiringSoon(state, rolledTo string, expiresAt, now time.Time) bool {
	return state == StateActive && rolledTo == "" && !expiresAt.After(now.Add(ExpiringSoonWithin))
}

// ParseExpiringWithin reads an expiring_within value: a whole number of days
// ("7d") or a Go duration ("36h", "90m"), greater than zero and at most the
// longest a key may live (no key expires later than that). Anything else is
// a KindBadRequest error naming the parameter.
func (s *Service) ParseExpiringWithin(v string) (time.Duration, error) {
	maxDays := int64(s.maxLifetime / (24 * time.Hour))
	bad := errorf(KindBadRequest, "expiring_within must be a number of days (7d) or a duration (36h), more than zero and at most %dd", maxDays)
	if v == "" {
		return 0, bad
	}
	// A window has no sign: parseSpan would read "-1h" (an overlap can
	// be told so, and refused as negative), so it is refused here.
	if v[0] == '+' || v[0] == '-' {
		return 0, bad
	}
	d, ok := parseSpan(v)
	if !ok {
		return 0, bad
	}
	if d <= 0 || d > s.maxLifetime {
		return 0, bad
	}
	return d, nil
}

// ExpiringKeyCount returns how many active keys of the whole service expire
// within ExpiringSoonWithin, as Run last counted them with the keys by
// state, and false before the first count.
func (s *Service) ExpiringKeyCount() (int, bool) {
	s.keyCounts.mu.Lock()
	defer s.keyCounts.mu.Unlock()
	return s.keyCounts.expiring, s.keyCounts.counts != nil
}
