package billing

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// Projections answer the three questions a customer asks of a prepaid
// wallet: how fast am I using credits, when will they run out, and how much
// must I add to last until a date. Everything is integer: rates are
// millicredits per day, time is microseconds, and products that could pass
// 2^63 go through 128-bit intermediates.

// ProjectionHorizon is how far ahead projections look; credits that last
// longer "last more than a year".
const ProjectionHorizon = 365 * 24 * time.Hour

// ProjectionRangeTolerance is when the 7-day and 30-day projections are shown
// as a range: when the two times left differ by more than this share (1/10)
// of the longer one.
const ProjectionRangeTolerance = 10

const dayMicros = int64(24 * time.Hour / time.Microsecond)

// UsageRate is the average number of credits a customer used per day over
// a recent window.
type UsageRate struct {
	Window int           // days asked for: 7, 30
	Used   Credits       // credits used in the window, up to now
	Span   time.Duration // the time averaged over: at least a day, at most Window days
	PerDay Credits       // Used per day of Span, rounded down to the millicredit
}

// RateOver averages daily usage (rollups with UTC days 'YYYY-MM-DD') over
// the last window days up to now: the UTC days from today-window+1 to today,
// with today counted for the part of it that has passed, so a busy morning
// moves the rate at once and a quiet one does not drag it down. When usage
// began inside the window (the earliest day in days with any credits),
// the average starts that day instead: a customer who started three days
// ago is averaged over three days, not diluted over thirty. The span is at
// least one day, so the first hour of usage is not multiplied by 24.
// Days after today or malformed days are ignored.
func RateOver(days []UsageDay, window int, now time.Time) UsageRate {
	r := UsageRate{Window: window}
	if window <= 0 {
		return r
	}
	now = now.UTC()
	today := now.Truncate(24 * time.Hour)
	start := today.AddDate(0, 0, -(window - 1))
	var first time.Time
	for _, d := range days {
		t, ok := parseDay(d.Day)
		if !ok || t.After(today) || d.Credits <= 0 {
			continue
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if !t.Before(start) {
			r.Used += d.Credits
		}
	}
	if r.Used <= 0 {
		r.Used = 0
		return r
	}
	if first.After(start) {
		start = first
	}
	r.Span = max(now.Sub(start), 24*time.Hour)
	r.PerDay = Credits(mulDiv(int64(r.Used), dayMicros, r.Span.Microseconds()))
	return r
}

// DaysSinceStart is how many days (calendar days, today counting as one)
// r averages over when usage began inside its window (RateOver starts the
// average there); 0 when the whole window counts. A full window spans
// Window-1 days and the part of today that has passed, so a shorter span
// began later.
func (r UsageRate) DaysSinceStart() int {
	if r.Span <= 0 || r.Span >= time.Duration(r.Window-1)*24*time.Hour {
		return 0
	}
	return int((r.Span + 24*time.Hour - 1) / (24 * time.Hour))
}

func parseDay(s string) (time.Time, bool) {
	t, err := time.Parse(time.DateOnly, s)
	return t, err == nil
}

// Outlook says what a projection found.
type Outlook string

// Outlooks of a projection.
const (
	OutlookDepleted Outlook = "depleted" // nothing is available now
	OutlookNoUsage  Outlook = "no_usage" // the rate is zero: credits are not being used up
	OutlookRunsOut  Outlook = "runs_out" // the credits run out at RunsOut
	OutlookBeyond   Outlook = "beyond"   // the credits last beyond ProjectionHorizon
)

// Projection is when a wallet's available credits run out at a usage rate.
type Projection struct {
	Outlook Outlook
	Rate    Credits   // per day
	RunsOut time.Time // OutlookRunsOut: when; OutlookDepleted: now
	// Lost are the credits that expire before the usage would reach them,
	// in time order, within the horizon (and before RunsOut).
	Lost []ExpiryLoss
}

// ExpiryLoss is the part of a lot that expires unused.
type ExpiryLoss struct {
	LotID   int64
	At      time.Time
	Credits Credits
}

// LostCredits is the total that expires unused.
func (p Projection) LostCredits() Credits {
	var n Credits
	for _, l := range p.Lost {
		n += l.Credits
	}
	return n
}

// LossSplit is the projected loss as the overview tells it: at is the
// first expiry that loses credits, first what the lots expiring then lose
// (the figure a reminder of those lots gives: the sum of their LostFrom),
// later what every later expiry loses. The whole loss is first + later.
func (p Projection) LossSplit() (at time.Time, first, later Credits) {
	for _, l := range p.Lost {
		switch {
		case at.IsZero() || l.At.Equal(at):
			at, first = l.At, first+l.Credits
		default:
			later += l.Credits
		}
	}
	return at, first, later
}

// LostFrom is what of lot id expires unused.
func (p Projection) LostFrom(id int64) Credits {
	for _, l := range p.Lost {
		if l.LotID == id {
			return l.Credits
		}
	}
	return 0
}

// Project runs the wallet forward at a constant rate (millicredits per
// day) from now: usage burns the live lots in burn order (SortLots), and
// whatever a lot still holds when it expires is lost on its expiry date,
// just as the sweeper writes it off. available is the balance less holds
// and debt; what the lots hold beyond it (credits reserved by running jobs,
// debt) is taken from the lots first, as if the holds were captured now. The
// computation is exact: it steps from event to event (a lot used up, a lot
// expiring), not day by day. lots are not modified.
func Project(now time.Time, lots []Lot, available, rate Credits) Projection {
	return project(now, lots, available, rate, ProjectionHorizon)
}

// simLot is a lot as the projection burns it: remaining, and its expiry in
// microseconds from now (math.MaxInt64: never).
type simLot struct {
	id        int64
	remaining Credits
	expires   int64
	at        time.Time // the expiry itself
	starts    int64     // a plan's renewal still to come: µs from now until its credits arrive (0: now)
}

func project(now time.Time, lots []Lot, available, rate Credits, horizon time.Duration) Projection {
	p := Projection{Outlook: OutlookRunsOut, Rate: max(rate, 0)}
	sim, sum := simLots(now, lots)
	if available <= 0 {
		p.Outlook, p.RunsOut = OutlookDepleted, now
		return p
	}
	// Take what the lots hold beyond the available credits (holds, debt)
	// from the front of the burn order. If the lots hold less than is
	// available (they never should), the rest is a lot that never expires.
	if reserved := sum - available; reserved < 0 {
		sim = append(sim, simLot{id: -1, remaining: -reserved, expires: math.MaxInt64})
	} else {
		for i := range sim {
			if sim[i].starts > 0 {
				continue
			}
			take := min(sim[i].remaining, reserved)
			sim[i].remaining -= take
			reserved -= take
		}
	}
	end := horizon.Microseconds()
	if rate <= 0 {
		// Nothing is used: every lot that expires within the horizon is lost.
		p.Outlook = OutlookNoUsage
		for _, l := range sim {
			if l.remaining > 0 && l.expires <= end && l.starts == 0 {
				p.Lost = append(p.Lost, ExpiryLoss{LotID: l.id, At: l.at, Credits: l.remaining})
			}
		}
		slices.SortStableFunc(p.Lost, func(a, b ExpiryLoss) int { return a.At.Compare(b.At) })
		return p
	}
	// used(t) is the usage from now to t µs later; consumed is what has been
	// taken from lots so far (at most used(t)).
	used := func(t int64) Credits { return Credits(mulDiv(int64(rate), t, dayMicros)) }
	var t int64
	var consumed Credits
	// Each pass either uses up the current lot or moves t to the next
	// expiry, where the next pass drops the expired lot (expires <= t): at
	// most two passes a lot, so the loop ends.
	for {
		// Lots whose time has come are lost (a lot is not burnable at the
		// instant it expires, as Lot.Live says).
		next := int64(math.MaxInt64) // the next expiry
		cur := -1                    // the lot being burned
		for i := range sim {
			l := &sim[i]
			if l.remaining <= 0 {
				continue
			}
			if l.starts > t {
				next = min(next, l.starts) // a renewal to come: its arrival is an event
				continue
			}
			if l.expires <= t {
				if l.starts == 0 { // a renewal's unused credits are not a loss to warn of
					p.Lost = append(p.Lost, ExpiryLoss{LotID: l.id, At: l.at, Credits: l.remaining})
				}
				l.remaining = 0
				continue
			}
			next = min(next, l.expires)
			if cur < 0 {
				cur = i
			}
		}
		if cur < 0 {
			// Out of credits (a renewal to come does not help now: requests
			// are refused until it arrives).
			p.RunsOut = now.Add(time.Duration(t) * time.Microsecond)
			return p
		}
		// When would the usage reach the end of the current lot?
		done := ceilMulDiv(int64(consumed+sim[cur].remaining), dayMicros, int64(rate))
		if min(done, next) > end {
			p.Outlook = OutlookBeyond
			return p
		}
		if done <= next {
			consumed += sim[cur].remaining
			sim[cur].remaining = 0
			t = done
			continue
		}
		// The next expiry comes first: burn up to it from the current lot
		// (which outlasts it, as done > next).
		u := used(next)
		sim[cur].remaining -= u - consumed
		consumed, t = u, next
	}
}

// simLots copies the lots live at now, in burn order, and sums them. A
// lot created after now is a plan's renewal to come (PlanRenewals): it
// burns from its arrival and is not part of what is available now.
func simLots(now time.Time, lots []Lot) ([]simLot, Credits) {
	live := make([]Lot, 0, len(lots))
	for _, l := range lots {
		if l.Live(now) {
			live = append(live, l)
		}
	}
	SortLots(live)
	sim := make([]simLot, len(live))
	var sum Credits
	for i, l := range live {
		sim[i] = simLot{id: l.ID, remaining: l.Remaining, expires: math.MaxInt64}
		if l.ExpiresAt != nil {
			sim[i].expires, sim[i].at = l.ExpiresAt.Sub(now).Microseconds(), *l.ExpiresAt
		}
		if l.CreatedAt.After(now) {
			sim[i].starts = l.CreatedAt.Sub(now).Microseconds()
			continue
		}
		sum += l.Remaining
	}
	return sim, sum
}

// TopUpFor is the smallest whole number of credits that, bought now (a
// purchase lot that never expires), makes the available credits last until
// `until` at rate: it covers the usage until then, any credits that
// expire unused on the way, and any shortfall (debt, holds) first. It is 0
// when the credits already last, when the rate is zero, or when until is
// not after now.
func TopUpFor(now time.Time, lots []Lot, available, rate Credits, until time.Time) Credits {
	if rate <= 0 || !until.After(now) {
		return 0
	}
	horizon := max(until.Sub(now), time.Microsecond)
	lasts := func(extra Credits) bool {
		p := project(now, withPurchase(now, lots, extra), available+extra, rate, horizon)
		return p.Outlook == OutlookBeyond || (p.Outlook == OutlookRunsOut && !p.RunsOut.Before(until))
	}
	if lasts(0) {
		return 0
	}
	// Enough for certain: the usage until then plus everything the lots
	// hold and any deficit, in a lot that never expires.
	var held Credits
	for _, l := range lots {
		held += max(l.Remaining, 0)
	}
	need := Credits(mulDiv(int64(rate), horizon.Microseconds(), dayMicros)) + held + max(-available, 0) + Milli
	lo, hi := int64(0), (int64(need)+Milli-1)/Milli // whole credits; lasts(hi) holds
	for lo+1 < hi {
		mid := lo + (hi-lo)/2
		if lasts(CreditsOf(mid)) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return CreditsOf(hi)
}

// withPurchase is lots plus a purchase of c credits made now.
func withPurchase(now time.Time, lots []Lot, c Credits) []Lot {
	if c <= 0 {
		return lots
	}
	var id int64
	for _, l := range lots {
		id = max(id, l.ID)
	}
	out := make([]Lot, len(lots), len(lots)+1)
	copy(out, lots)
	return append(out, Lot{ID: id + 1, Source: SourcePurchase, Priority: DefaultPriority[SourcePurchase],
		Amount: c, Remaining: c, CreatedAt: now})
}

// Forecast is the overview's outlook: the usage rate over the last 7 and 30
// days, when the available credits run out at each, and how much to top up
// to last until a date.
type Forecast struct {
	Now              time.Time
	Available        Credits
	Week, Month      UsageRate
	AtWeek, AtMonth  Projection
	TopUp            Credits   // to last until TopUpUntil at the higher of the two rates; 0: no need
	TopUpUntil       time.Time // the date the top-up is for
	TopUpAlreadyLast bool      // the credits already last until TopUpUntil
	// Renewal is a subscriber's next plan renewal (its credits, arriving at
	// CreatedAt); the projections count it and the ones after it.
	Renewal *Lot
}

// NewForecast computes a Forecast from daily usage (at least the last 30
// days), the live lots and the available balance.
func NewForecast(now time.Time, days []UsageDay, lots []Lot, available Credits, until time.Time) Forecast {
	return NewPlanForecast(now, days, lots, available, until, nil)
}

// NewPlanForecast is NewForecast for a subscriber: renewals are the
// plan's periods to come (PlanRenewals), counted from the day they arrive.
func NewPlanForecast(now time.Time, days []UsageDay, lots []Lot, available Credits, until time.Time, renewals []Lot) Forecast {
	f := Forecast{Now: now, Available: available, TopUpUntil: until,
		Week: RateOver(days, 7, now), Month: RateOver(days, 30, now)}
	if len(renewals) > 0 {
		r := renewals[0]
		f.Renewal = &r
		lots = append(slices.Clip(lots), renewals...)
	}
	f.AtWeek = Project(now, lots, available, f.Week.PerDay)
	f.AtMonth = Project(now, lots, available, f.Month.PerDay)
	rate := max(f.Week.PerDay, f.Month.PerDay)
	f.TopUp = TopUpFor(now, lots, available, rate, until)
	f.TopUpAlreadyLast = rate > 0 && available > 0 && f.TopUp == 0
	return f
}

// Primary is the projection to lead with: the 7-day one, or the 30-day
// one when nothing was used in the last 7 days.
func (f Forecast) Primary() Projection {
	if f.Week.PerDay == 0 && f.Month.PerDay > 0 {
		return f.AtMonth
	}
	return f.AtWeek
}

// Range reports whether the 7-day and 30-day projections differ notably
// (by more than a tenth of the longer time left, or one runs out within the
// horizon and the other not), so the overview shows both ends.
func (f Forecast) Range() bool {
	w, m := f.AtWeek, f.AtMonth
	if f.Week.PerDay == 0 || f.Month.PerDay == 0 {
		return false
	}
	switch {
	case w.Outlook == OutlookBeyond && m.Outlook == OutlookBeyond:
		return false
	case w.Outlook == OutlookBeyond || m.Outlook == OutlookBeyond:
		return true
	case w.Outlook != OutlookRunsOut || m.Outlook != OutlookRunsOut:
		return false
	}
	a, b := w.RunsOut.Sub(f.Now), m.RunsOut.Sub(f.Now)
	lo, hi := min(a, b), max(a, b)
	return (hi-lo)*ProjectionRangeTolerance > hi
}

// Earliest and Latest are the two ends of the range, soonest first (for
// Beyond, Latest has Outlook beyond).
func (f Forecast) Earliest() Projection { e, _ := f.ends(); return e }

// Latest is the later end of the range (see Earliest).
func (f Forecast) Latest() Projection { _, l := f.ends(); return l }

func (f Forecast) ends() (Projection, Projection) {
	w, m := f.AtWeek, f.AtMonth
	if w.Outlook == OutlookBeyond || (m.Outlook == OutlookRunsOut && m.RunsOut.Before(w.RunsOut)) {
		return m, w
	}
	return w, m
}

// mulDiv is a*b/c rounded down, for non-negative a, b and positive c,
// through a 128-bit product; it saturates at math.MaxInt64 (and is 0 when
// an argument is out of its domain).
func mulDiv(a, b, c int64) int64 { return muldiv(a, b, c, false) }

// ceilMulDiv is a*b/c rounded up (the smallest t with t*c >= a*b), with
// mulDiv's domain and saturation.
func ceilMulDiv(a, b, c int64) int64 { return muldiv(a, b, c, true) }

func muldiv(a, b, c int64, up bool) int64 {
	if a <= 0 || b <= 0 || c <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, uint64(c))
	if up && r != 0 {
		q++
	}
	return int64(min(q, math.MaxInt64))
}
