package keyservice

import (
	"strconv"
	"strings"
	"time"
)

// maxSpanText bounds the text parseSpan reads: no valid span is longer,
// and a megabyte of digits is not worth parsing.
const maxSpanText = 32

// parseSpan reads a span of time as the API and the command line spell
// it: whole days ("7d", the unit Go's durations lack) or a Go duration
// ("36h", "90m", "0s", "-1h"). ok is false for anything else. The callers
// bound the span, each for its own use.
func parseSpan(v string) (d time.Duration, ok bool) {
	if v == "" || len(v) > maxSpanText {
		return 0, false
	}
	if days, isDays := strings.CutSuffix(v, "d"); isDays {
		// Six digits at most, so the multiply below cannot overflow.
		if days == "" || len(days) > 6 || strings.Trim(days, "0123456789") != "" {
			return 0, false
		}
		n, _ := strconv.Atoi(days)
		return time.Duration(n) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

// ParseOverlap reads the overlap of a key roll or a verifier-token
// rotation: how long the old one keeps working. Unreadable is
// KindBadRequest, as a malformed time is; negative is KindInvalid. The
// upper bound is each operation's own.
func ParseOverlap(v string) (time.Duration, error) {
	d, ok := parseSpan(strings.TrimSpace(v))
	if !ok {
		return 0, errorf(KindBadRequest, "overlap must be a duration such as 24h, 90m or 7d (0s ends the old one at once)")
	}
	if d < 0 {
		return 0, errorf(KindInvalid, "overlap must be 0 or more (0s ends the old one at once)")
	}
	return d, nil
}
