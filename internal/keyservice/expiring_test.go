package keyservice

import (
	"testing"
	"time"
)

func TestParseExpiringWithin(t *testing.T) {
	s := &Service{maxLifetime: DefaultMaxKeyLifetime}
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "1d": 24 * time.Hour, "365d": 365 * 24 * time.Hour, "007d": 7 * 24 * time.Hour,
		"36h": 36 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute, "8760h": 365 * 24 * time.Hour,
	} {
		if got, err := s.ParseExpiringWithin(in); err != nil || got != want {
			t.Errorf("ParseExpiringWithin(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "366d", "8761h", "0d", "-1d", "+1d", "-1h", "+1h", "1.5d", "d", "7"} {
		if _, err := s.ParseExpiringWithin(in); KindOf(err) != KindBadRequest {
			t.Errorf("ParseExpiringWithin(%q) = %v; want a bad request", in, err)
		}
	}
	// The bound follows the configured lifetime.
	long := &Service{maxLifetime: 730 * 24 * time.Hour}
	if _, err := long.ParseExpiringWithin("700d"); err != nil {
		t.Errorf("700d with a 730-day lifetime: %v", err)
	}
}

// Only an active key is expiring soon, up to and including 7 days ahead.
func TestExpiringSoon(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		state string
		in    time.Duration
		want  bool
	}{
		{StateActive, 3 * 24 * time.Hour, true},
		{StateActive, 7 * 24 * time.Hour, true},
		{StateActive, 7*24*time.Hour + time.Microsecond, false},
		{StateActive, 30 * 24 * time.Hour, false},
		{StateExpired, -time.Hour, false},
		{StateOrphaned, 3 * 24 * time.Hour, false},
		{StateRevoked, 3 * 24 * time.Hour, false},
	} {
		if got := expiringSoon(c.state, "", now.Add(c.in), now); got != c.want {
			t.Errorf("%s key due in %v: expiring soon %v, want %v", c.state, c.in, got, c.want)
		}
	}
	// A key rolled away, in its overlap: its successor already stands.
	if expiringSoon(StateActive, "key_next", now.Add(24*time.Hour), now) {
		t.Error("a key rolled away is marked expiring soon")
	}
}
