package views

import (
	"slices"
	"strconv"
	"time"

	"github.com/tally-billing/tally/billing"
)

// DashboardPeriods are the day counts the usage chart offers.
var DashboardPeriods = []int{30, 90}

// DashboardPeriod reads the ?days= of the overview: 30 (default) or 90.
func DashboardPeriod(q string) int {
	n, _ := strconv.Atoi(q)
	if slices.Contains(DashboardPeriods, n) {
		return n
	}
	return DashboardPeriods[0]
}

// DashboardChart is the overview's chart: credits used per UTC day, stacked
// by feature, over the last Period days (today included, so far).
type DashboardChart struct {
	Period int
	Days   []DashboardChartDay // oldest first, Period of them
	Series []DashboardSeries   // the features, most used first; "Other" last
	Max    billing.Credits     // the top of the y axis
	Ticks  []billing.Credits   // y axis labels from 0 to Max
	Total  billing.Credits
	Peak   int // index in Days of the busiest day
}

// DashboardChartDay is one bar.
type DashboardChartDay struct {
	Day     time.Time // midnight UTC
	Today   bool
	Total   billing.Credits
	Credits []billing.Credits // per series
}

// DashboardSeries is one feature in the chart and its legend.
type DashboardSeries struct {
	Key, Name string
	Total     billing.Credits
	Fill      string // the bar's class
	Swatch    string // the legend's class
}

// dashboardPalette colours the series (most used first); features beyond
// it are summed as "Other".
var dashboardPalette = []struct{ fill, swatch string }{
	{"fill-brand-500", "bg-brand-500"},
	{"fill-sky-400", "bg-sky-400"},
	{"fill-emerald-500", "bg-emerald-500"},
	{"fill-amber-400", "bg-amber-400"},
	{"fill-rose-400", "bg-rose-400"},
	{"fill-violet-300", "bg-violet-300"},
}

const (
	chartBarPitch = 10   // viewBox units per day
	chartBarWidth = 7    // of which the bar
	chartHeight   = 1000 // viewBox units of the y axis
)

// NewDashboardChart builds the chart of the last period days up to now from
// daily rollups; names maps feature keys to the price book's names.
func NewDashboardChart(usage []billing.UsageDay, names map[string]string, period int, now time.Time) DashboardChart {
	c := DashboardChart{Period: period}
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(period - 1))
	index := map[string]int{} // day -> position
	for i := range period {
		d := first.AddDate(0, 0, i)
		c.Days = append(c.Days, DashboardChartDay{Day: d, Today: i == period-1})
		index[d.Format(time.DateOnly)] = i
	}
	// Rank the features by their credits in the period.
	totals := map[string]billing.Credits{}
	for _, u := range usage {
		if _, ok := index[u.Day]; ok && u.Credits > 0 {
			totals[u.Feature] += u.Credits
		}
	}
	keys := make([]string, 0, len(totals))
	for k := range totals {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if totals[a] != totals[b] {
			return int(min(max(totals[b]-totals[a], -1), 1))
		}
		return compareStrings(a, b)
	})
	// The most used features get a colour each; when there are more than
	// colours, the last colour's place goes to a grey "Other" for the rest.
	named := len(keys)
	if named > len(dashboardPalette) {
		named = len(dashboardPalette) - 1
	}
	series := map[string]int{}
	for i, k := range keys {
		if i >= named {
			series[k] = named
			continue
		}
		name := names[k]
		if name == "" {
			name = k
		}
		c.Series = append(c.Series, DashboardSeries{Key: k, Name: name, Fill: dashboardPalette[i].fill, Swatch: dashboardPalette[i].swatch})
		series[k] = i
	}
	if named < len(keys) {
		c.Series = append(c.Series, DashboardSeries{Name: "Other", Fill: "fill-gray-300", Swatch: "bg-gray-300"})
	}
	for i := range c.Days {
		c.Days[i].Credits = make([]billing.Credits, len(c.Series))
	}
	for _, u := range usage {
		i, ok := index[u.Day]
		if !ok || u.Credits <= 0 {
			continue
		}
		s := series[u.Feature]
		c.Days[i].Credits[s] += u.Credits
		c.Days[i].Total += u.Credits
		c.Series[s].Total += u.Credits
		c.Total += u.Credits
	}
	for i, d := range c.Days {
		if d.Total > c.Days[c.Peak].Total {
			c.Peak = i
		}
	}
	c.Max, c.Ticks = chartScale(c.Days[c.Peak].Total)
	return c
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// chartScale picks the y axis: a round step (1, 2 or 5 times a power of
// ten millicredits) so that at most four steps cover peak.
func chartScale(peak billing.Credits) (billing.Credits, []billing.Credits) {
	if peak <= 0 {
		return 0, nil
	}
	want := (peak + 3) / 4
	step := billing.Credits(0)
	for base := billing.Credits(1); step == 0; base *= 10 {
		for _, k := range []billing.Credits{1, 2, 5} {
			if base*k >= want {
				step = base * k
				break
			}
		}
	}
	n := (peak + step - 1) / step
	ticks := make([]billing.Credits, 0, n+1)
	for i := billing.Credits(0); i <= n; i++ {
		ticks = append(ticks, i*step)
	}
	return n * step, ticks
}

// dashboardRect is one stacked segment of a bar, in viewBox units.
type dashboardRect struct {
	X, Y, W, H int64
	Fill       string
}

// viewBox is the SVG's coordinate system.
func (c DashboardChart) viewBox() string {
	return "0 0 " + strconv.Itoa(c.Period*chartBarPitch) + " " + strconv.Itoa(chartHeight)
}

// y is the height in viewBox units of v credits.
func (c DashboardChart) y(v billing.Credits) int64 {
	if c.Max <= 0 {
		return chartHeight
	}
	n, m := int64(v), int64(c.Max)
	for m > 1<<50 { // keep n*chartHeight in range
		n, m = n>>10, m>>10
	}
	return chartHeight - n*chartHeight/m
}

// bar is day i's segments, bottom up in series order.
func (c DashboardChart) bar(i int) []dashboardRect {
	var out []dashboardRect
	var cum billing.Credits
	x := int64(i*chartBarPitch + (chartBarPitch-chartBarWidth)/2)
	for s, v := range c.Days[i].Credits {
		if v <= 0 {
			continue
		}
		bottom, top := c.y(cum), c.y(cum+v)
		cum += v
		if bottom-top <= 0 {
			continue
		}
		out = append(out, dashboardRect{X: x, Y: top, W: chartBarWidth, H: bottom - top, Fill: c.Series[s].Fill})
	}
	return out
}

// gridY is the y of a tick.
func (c DashboardChart) gridY(v billing.Credits) string { return strconv.FormatInt(c.y(v), 10) }

// dashboardPercent writes num/den as a CSS percentage with one decimal.
func dashboardPercent(num, den int64) string {
	if den <= 0 {
		return "0%"
	}
	pm := num * 1000 / den
	return strconv.FormatInt(pm/10, 10) + "." + strconv.FormatInt(pm%10, 10) + "%"
}

// tickBottom places a y axis label.
func (c DashboardChart) tickBottom(v billing.Credits) string {
	return "bottom: " + dashboardPercent(int64(chartHeight-c.y(v)), chartHeight)
}

// labelled reports whether day i gets an x axis label: today and every
// week (30 days) or two weeks (90 days) before it; narrow reports whether
// the label also shows on a phone (every other one).
func (c DashboardChart) labelled(i int) (show, narrow bool) {
	step := 7
	if c.Period > 45 {
		step = 14
	}
	back := c.Period - 1 - i
	return back%step == 0, back%(2*step) == 0
}

// labelStyle places day i's x axis label under the middle of its bar; the
// last one is anchored at the right edge so it stays inside the chart.
func (c DashboardChart) labelStyle(i int) string {
	if i == c.Period-1 {
		return "right: 0"
	}
	return "left: " + dashboardPercent(int64(i*chartBarPitch+chartBarPitch/2), int64(c.Period*chartBarPitch))
}

// dashboardUTC is f for UTC days: the chart's days are UTC days (the
// rollups'), whatever the customer's time zone.
func dashboardUTC(f Fmt) Fmt { f.Loc = time.UTC; return f }

// summary is the chart's text alternative in one sentence.
func (c DashboardChart) summary(f Fmt) string {
	if c.Total == 0 {
		return "No credits used in the last " + f.Int(int64(c.Period)) + " days."
	}
	s := f.CreditsWord(c.Total) + " used in the last " + f.Int(int64(c.Period)) + " days; the busiest day was " +
		dashboardUTC(f).Date(c.Days[c.Peak].Day) + " with " + f.CreditsWord(dashboardRound(c.Days[c.Peak].Total)) + "."
	if len(c.Series) > 0 {
		s += " Most went to " + c.Series[0].Name + " (" + f.CreditsWord(dashboardRound(c.Series[0].Total)) + ")."
	}
	return s
}

// tooltip is a bar's <title>: the day, its total and each feature.
func (c DashboardChart) tooltip(f Fmt, i int) string {
	d := c.Days[i]
	s := dashboardUTC(f).Date(d.Day)
	if d.Today {
		s += " (today so far)"
	}
	s += ": " + f.CreditsWord(d.Total)
	for j, v := range d.Credits {
		if v > 0 {
			s += "\n" + c.Series[j].Name + ": " + f.Credits(v)
		}
	}
	return s
}

// newestFirst lists the day indexes for the table, most recent first.
func (c DashboardChart) newestFirst() []int {
	out := make([]int, len(c.Days))
	for i := range out {
		out[i] = len(c.Days) - 1 - i
	}
	return out
}
