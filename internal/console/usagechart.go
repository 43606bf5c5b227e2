package console

import (
	"fmt"
	"strconv"
	"time"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// The chart's geometry, in SVG user units (it scales with its box).
const (
	chartW, chartH    = 720, 260
	chartLeft         = 56 // room for the y labels
	chartRight        = 12
	chartTop          = 30
	chartBottom       = 40 // room for the hour labels
	chartPlotW        = chartW - chartLeft - chartRight
	chartPlotH        = chartH - chartTop - chartBottom
	chartBarGapFactor = 0.2 // of a slot, left empty between bars
)

// usageChart is a key's requests per hour drawn as stacked bars (allowed
// below, limited above), computed here so the template only places
// shapes: no arithmetic, no chart framework, no script.
type usageChart struct {
	Range              string // "24h" or "7d"
	W, H               int
	PlotLeft, PlotTop  int
	PlotRight, PlotBot int
	Bars               []usageBar
	YTicks             []chartTick
	XTicks             []chartTick
	Allowed, Limited   int64 // totals
	Peak               int64
	From, To           time.Time
	Empty              bool
}

type usageBar struct {
	Hour                   time.Time
	Allowed, Limited       int64
	RateLimited, Forbidden int64
	X, W                   float64
	AllowedY, AllowedH     float64
	LimitedY, LimitedH     float64
	Label                  string // for the bar's tooltip and the table
}

type chartTick struct {
	Pos   float64
	Label string
}

// niceTop is the y axis's top for a peak: four ticks of a step of 1, 2, 3, 4, 5, 6
// or 8 times a power of ten, the smallest that reaches the peak (the peak
// bar then fills more than half the height).
func niceTop(peak int64) int64 {
	need := max((peak+3)/4, 1)
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 3, 4, 5, 6, 8} {
			if m*p >= need {
				return 4 * m * p
			}
		}
	}
}

// newUsageChart lays out points (one per hour, oldest first) as bars.
func newUsageChart(rng string, pts []keyservice.UsagePoint) usageChart {
	c := usageChart{Range: rng, W: chartW, H: chartH, PlotLeft: chartLeft, PlotTop: chartTop,
		PlotRight: chartW - chartRight, PlotBot: chartH - chartBottom}
	if len(pts) == 0 {
		c.Empty = true
		return c
	}
	c.From, c.To = pts[0].Hour, pts[len(pts)-1].Hour.Add(time.Hour)
	for _, p := range pts {
		lim := p.RateLimited + p.Forbidden
		c.Allowed += p.Allowed
		c.Limited += lim
		c.Peak = max(c.Peak, p.Allowed+lim)
	}
	c.Empty = c.Allowed+c.Limited == 0
	top := niceTop(c.Peak)
	scale := float64(chartPlotH) / float64(top)
	for i := 0; i <= 4; i++ {
		v := top * int64(i) / 4
		c.YTicks = append(c.YTicks, chartTick{Pos: float64(c.PlotBot) - float64(v)*scale, Label: compactCount(v)})
	}
	slot := float64(chartPlotW) / float64(len(pts))
	gap := slot * chartBarGapFactor
	every, format := 3, "15:04"
	if rng == "7d" {
		every, format = 24, "Mon 2 Jan"
	}
	for i, p := range pts {
		lim := p.RateLimited + p.Forbidden
		b := usageBar{Hour: p.Hour, Allowed: p.Allowed, Limited: lim, RateLimited: p.RateLimited, Forbidden: p.Forbidden,
			X: round2(float64(chartLeft) + float64(i)*slot + gap/2), W: round2(slot - gap)}
		b.AllowedH = round2(float64(p.Allowed) * scale)
		b.AllowedY = round2(float64(c.PlotBot) - b.AllowedH)
		b.LimitedH = round2(float64(lim) * scale)
		b.LimitedY = round2(b.AllowedY - b.LimitedH)
		b.Label = fmt.Sprintf("%s–%s UTC: %d allowed, %d limited", p.Hour.UTC().Format("Mon 2 Jan 15:04"), p.Hour.Add(time.Hour).UTC().Format("15:04"), p.Allowed, lim)
		c.Bars = append(c.Bars, b)
		if p.Hour.UTC().Hour()%every == 0 {
			c.XTicks = append(c.XTicks, chartTick{Pos: round2(float64(chartLeft) + float64(i)*slot), Label: p.Hour.UTC().Format(format)})
		}
	}
	return c
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// compactCount writes 1500 as 1.5k and 2000000 as 2M, for axis labels.
func compactCount(n int64) string {
	switch {
	case n >= 1_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + "M"
	case n >= 10_000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
