package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// ratePeriods are the create dialog's choices for a rate limit's period.
var ratePeriods = []struct{ Value, Label string }{{"1s", "second"}, {"1m", "minute"}, {"1h", "hour"}}

// limitsText says a key's limits in a few words for its row: "5 per
// second · 10.0.0.0/8, 192.168.0.0/16 +1", or "" for none.
func limitsText(l keyservice.Limits) string {
	var parts []string
	if r := l.RateLimit; r != nil {
		per := map[time.Duration]string{time.Second: "second", time.Minute: "minute", time.Hour: "hour"}[r.Per]
		parts = append(parts, fmt.Sprintf("%d per %s", r.Requests, per))
	}
	if n := len(l.AllowedCIDRs); n > 0 {
		nets := strings.Join(l.AllowedCIDRs[:min(n, 2)], ", ")
		if n > 2 {
			nets += fmt.Sprintf(" +%d", n-2)
		}
		parts = append(parts, "from "+nets)
	}
	return strings.Join(parts, " · ")
}

// limitsFromForm reads the create dialog's optional limits: a number of
// requests with its period, and networks separated by commas, spaces or
// lines. The service checks the values; msg is set only for what it could
// not be given at all.
func limitsFromForm(requests, per, cidrs string) (l keyservice.Limits, msg string) {
	if requests = strings.TrimSpace(requests); requests != "" {
		n, err := strconv.Atoi(requests)
		if err != nil {
			return l, "The rate limit must be a whole number of requests."
		}
		d, err := keyservice.ParseRatePer(per)
		if err != nil {
			return l, "Choose whether the rate limit counts per second, minute or hour."
		}
		l.RateLimit = &keyservice.RateLimit{Requests: n, Per: d}
	}
	l.AllowedCIDRs = strings.FieldsFunc(cidrs, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	return l, ""
}
