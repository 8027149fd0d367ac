package billing

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

// lot builds a live lot of remaining credits created at t0.
func lot(id int64, priority int, remaining Credits, expires *time.Time) Lot {
	return Lot{ID: id, Source: SourcePromo, Priority: priority, Amount: remaining, Remaining: remaining, ExpiresAt: expires, CreatedAt: t0}
}

func lotIDs(lots []Lot) []int64 {
	ids := make([]int64, len(lots))
	for i, l := range lots {
		ids[i] = l.ID
	}
	return ids
}

func TestSortLots(t *testing.T) {
	paris := time.FixedZone("Paris", 3600)
	for _, tc := range []struct {
		name string
		lots []Lot
		want []int64
	}{
		{"priority ascending", []Lot{lot(1, 50, 1, nil), lot(2, 10, 1, nil), lot(3, 20, 1, nil)}, []int64{2, 3, 1}},
		{"priority beats expiry", []Lot{lot(1, 50, 1, at(time.Hour)), lot(2, 10, 1, nil)}, []int64{2, 1}},
		{"soonest expiry first, never-expiring last",
			[]Lot{lot(1, 10, 1, at(2*time.Hour)), lot(2, 10, 1, nil), lot(3, 10, 1, at(time.Hour))}, []int64{3, 1, 2}},
		{"expiry beats age", func() []Lot {
			older := lot(1, 10, 1, at(2*time.Hour))
			older.CreatedAt = t0.Add(-time.Hour)
			return []Lot{older, lot(2, 10, 1, at(time.Hour))}
		}(), []int64{2, 1}},
		{"oldest first when expiry ties", func() []Lot {
			newer := lot(1, 10, 1, at(time.Hour))
			newer.CreatedAt = t0.Add(time.Minute)
			return []Lot{newer, lot(2, 10, 1, at(time.Hour))}
		}(), []int64{2, 1}},
		{"oldest first when neither expires", func() []Lot {
			newer := lot(1, 10, 1, nil)
			newer.CreatedAt = t0.Add(time.Minute)
			return []Lot{newer, lot(2, 10, 1, nil)}
		}(), []int64{2, 1}},
		{"id breaks a full tie", []Lot{lot(9, 10, 1, at(time.Hour)), lot(3, 10, 1, at(time.Hour)), lot(5, 10, 1, at(time.Hour))}, []int64{3, 5, 9}},
		{"same instant in another zone is a tie", func() []Lot {
			a := lot(7, 10, 1, nil)
			exp := t0.Add(time.Hour).In(paris)
			a.ExpiresAt, a.CreatedAt = &exp, t0.In(paris)
			return []Lot{a, lot(4, 10, 1, at(time.Hour))}
		}(), []int64{4, 7}},
		{"all rules at once", func() []Lot {
			old := lot(6, 20, 1, nil)
			old.CreatedAt = t0.Add(-time.Hour)
			return []Lot{lot(1, 50, 1, nil), lot(2, 20, 1, nil), lot(3, 20, 1, at(time.Hour)), lot(4, 20, 1, at(time.Minute)), lot(5, 0, 1, nil), old}
		}(), []int64{5, 4, 3, 6, 2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			SortLots(tc.lots)
			if got := lotIDs(tc.lots); !slices.Equal(got, tc.want) {
				t.Fatalf("burn order %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBurnLots(t *testing.T) {
	frozen := lot(2, 10, 500, nil)
	frozen.Frozen = true
	for _, tc := range []struct {
		name      string
		lots      []Lot
		amount    Credits
		want      []Burn
		shortfall Credits
	}{
		{"part of one lot", []Lot{lot(1, 10, 1000, nil)}, 250, []Burn{{1, 250}}, 0},
		{"exactly one lot leaves the next alone", []Lot{lot(1, 10, 1000, nil), lot(2, 20, 1000, nil)}, 1000, []Burn{{1, 1000}}, 0},
		{"across lots in burn order", []Lot{lot(1, 50, 1000, nil), lot(2, 10, 300, nil), lot(3, 20, 300, at(time.Hour))}, 1000,
			[]Burn{{2, 300}, {3, 300}, {1, 400}}, 0},
		{"soonest expiry first", []Lot{lot(1, 10, 100, at(2*time.Hour)), lot(2, 10, 100, at(time.Hour))}, 150, []Burn{{2, 100}, {1, 50}}, 0},
		{"skips a lot expiring now", []Lot{lot(1, 10, 100, at(0)), lot(2, 20, 100, nil)}, 50, []Burn{{2, 50}}, 0},
		{"skips an expired lot", []Lot{lot(1, 10, 100, at(-time.Second)), lot(2, 20, 100, nil)}, 50, []Burn{{2, 50}}, 0},
		{"burns a lot expiring a nanosecond from now", []Lot{lot(1, 10, 100, at(time.Nanosecond))}, 50, []Burn{{1, 50}}, 0},
		{"skips a frozen lot", []Lot{lot(1, 20, 100, nil), frozen}, 50, []Burn{{1, 50}}, 0},
		{"burns first what an expired lot kept for holds", func() []Lot {
			kept := lot(1, 20, 30, at(-time.Minute))
			kept.KeptForHolds = true
			return []Lot{lot(2, 10, 100, nil), kept}
		}(), 50, []Burn{{1, 30}, {2, 20}}, 0},
		{"skips an empty lot", []Lot{lot(1, 10, 0, nil), lot(2, 20, 100, nil)}, 50, []Burn{{2, 50}}, 0},
		{"shortfall when lots do not cover", []Lot{lot(1, 10, 100, nil), lot(2, 20, 200, nil)}, 1000, []Burn{{1, 100}, {2, 200}}, 700},
		{"all shortfall without live lots", []Lot{lot(1, 10, 100, at(-time.Hour)), frozen}, 80, nil, 80},
		{"no lots", nil, 80, nil, 80},
		{"zero amount burns nothing", []Lot{lot(1, 10, 100, nil)}, 0, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.lots)
			burns, shortfall := BurnLots(tc.lots, tc.amount, t0)
			if !slices.Equal(burns, tc.want) || shortfall != tc.shortfall {
				t.Fatalf("BurnLots = %v, shortfall %d; want %v, shortfall %d", burns, shortfall, tc.want, tc.shortfall)
			}
			var sum Credits
			for _, b := range burns {
				sum += b.Credits
			}
			if sum != tc.amount-shortfall {
				t.Fatalf("burns sum to %d, want amount %d - shortfall %d", sum, tc.amount, shortfall)
			}
			// Sorted in place, otherwise untouched.
			slices.SortFunc(before, func(a, b Lot) int { return int(a.ID - b.ID) })
			after := slices.Clone(tc.lots)
			slices.SortFunc(after, func(a, b Lot) int { return int(a.ID - b.ID) })
			if !slices.EqualFunc(before, after, sameLot) {
				t.Fatalf("BurnLots modified the lots: %+v -> %+v", before, after)
			}
		})
	}
}

func sameLot(a, b Lot) bool {
	return a.ID == b.ID && a.Priority == b.Priority && a.Amount == b.Amount && a.Remaining == b.Remaining &&
		equalPtr(a.ExpiresAt, b.ExpiresAt) && a.Frozen == b.Frozen && a.CreatedAt.Equal(b.CreatedAt) && a.Source == b.Source
}

func TestPlanDebit(t *testing.T) {
	lots := func() []Lot { return []Lot{lot(1, 10, 600, nil), lot(2, 50, 400, nil)} }
	for _, tc := range []struct {
		name   string
		w      Wallet
		lots   []Lot
		charge Credits
		extra  Credits
		force  bool
		want   DebitPlan
	}{
		{"within the balance", Wallet{Balance: 1000}, lots(), 700, 0, false,
			DebitPlan{Burns: []Burn{{1, 600}, {2, 100}}, BalanceAfter: 300}},
		{"the whole balance", Wallet{Balance: 1000}, lots(), 1000, 0, false,
			DebitPlan{Burns: []Burn{{1, 600}, {2, 400}}, BalanceAfter: 0}},
		{"zero charge", Wallet{Balance: 1000}, lots(), 0, 0, false, DebitPlan{BalanceAfter: 1000}},
		{"into the overdraft", Wallet{Balance: 1000, OverdraftLimit: 500}, lots(), 1500, 0, false,
			DebitPlan{Burns: []Burn{{1, 600}, {2, 400}}, DebtIncrease: 500, BalanceAfter: -500}},
		{"deeper into the overdraft", Wallet{Balance: -200, Debt: 200, OverdraftLimit: 500}, nil, 300, 0, false,
			DebitPlan{DebtIncrease: 300, BalanceAfter: -500}},
		{"up to what holds leave", Wallet{Balance: 1000, Held: 400}, lots(), 600, 0, false,
			DebitPlan{Burns: []Burn{{1, 600}}, BalanceAfter: 400}},
		{"extra counts: a capture may use its own hold", Wallet{Balance: 1000, Held: 400}, lots(), 1000, 400, false,
			DebitPlan{Burns: []Burn{{1, 600}, {2, 400}}, BalanceAfter: 0}},
		{"force plans beyond the overdraft", Wallet{Balance: 1000, OverdraftLimit: 100}, lots(), 5000, 0, true,
			DebitPlan{Burns: []Burn{{1, 600}, {2, 400}}, DebtIncrease: 4000, BalanceAfter: -4000}},
		{"force plans with nothing at all", Wallet{}, nil, 5, 0, true, DebitPlan{DebtIncrease: 5, BalanceAfter: -5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanDebit(tc.w, tc.lots, tc.charge, tc.extra, tc.force, t0)
			if err != nil {
				t.Fatalf("PlanDebit: %v", err)
			}
			if !slices.Equal(got.Burns, tc.want.Burns) || got.DebtIncrease != tc.want.DebtIncrease || got.BalanceAfter != tc.want.BalanceAfter {
				t.Fatalf("PlanDebit = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPlanDebitRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		w      Wallet
		charge Credits
		extra  Credits
	}{
		{"one millicredit beyond the balance", Wallet{Balance: 1000}, 1001, 0},
		{"one millicredit beyond the overdraft", Wallet{Balance: 1000, OverdraftLimit: 500}, 1501, 0},
		{"holds reduce what is available", Wallet{Balance: 1000, Held: 400}, 601, 0},
		{"beyond the hold's extra", Wallet{Balance: 1000, Held: 400}, 1001, 400},
		{"already in debt", Wallet{Balance: -100, Debt: 100, OverdraftLimit: 100}, 1, 0},
		{"empty wallet", Wallet{}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lots := []Lot{lot(1, 10, max(tc.w.Balance, 0), nil)}
			before := slices.Clone(lots)
			_, err := PlanDebit(tc.w, lots, tc.charge, tc.extra, false, t0)
			wantCode(t, err, CodeInsufficientCredits)
			e := err.(*Error)
			for k, want := range map[string]Credits{
				"balance": tc.w.Balance, "available": tc.w.Available(), "held": tc.w.Held, "required": tc.charge,
			} {
				if got, ok := e.Details[k].(Credits); !ok || got != want {
					t.Errorf("Details[%q] = %v, want %v", k, e.Details[k], want)
				}
			}
			if !slices.EqualFunc(before, lots, sameLot) {
				t.Errorf("a refused debit changed the lots")
			}
			// The same charge always plans when forced.
			if _, err := PlanDebit(tc.w, lots, tc.charge, tc.extra, true, t0); err != nil {
				t.Errorf("forced PlanDebit: %v", err)
			}
		})
	}
	t.Run("negative charge", func(t *testing.T) {
		_, err := PlanDebit(Wallet{Balance: 1000}, nil, -1, 0, true, t0)
		wantCode(t, err, CodeInternal)
	})
}

func TestPlanGrant(t *testing.T) {
	for _, tc := range []struct {
		name   string
		w      Wallet
		amount Credits
		want   GrantPlan
	}{
		{"no debt", Wallet{Balance: 500}, 1000, GrantPlan{LotRemaining: 1000, BalanceAfter: 1500}},
		{"repays part of the grant to debt", Wallet{Balance: -300, Debt: 300}, 1000, GrantPlan{LotRemaining: 700, DebtRepaid: 300, BalanceAfter: 700}},
		{"debt swallows the grant", Wallet{Balance: -3000, Debt: 3000}, 1000, GrantPlan{LotRemaining: 0, DebtRepaid: 1000, BalanceAfter: -2000}},
		{"grant equals debt", Wallet{Balance: -1000, Debt: 1000}, 1000, GrantPlan{LotRemaining: 0, DebtRepaid: 1000, BalanceAfter: 0}},
		{"largest grant", Wallet{}, MaxCredits, GrantPlan{LotRemaining: MaxCredits, BalanceAfter: MaxCredits}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanGrant(tc.w, tc.amount)
			if err != nil {
				t.Fatalf("PlanGrant: %v", err)
			}
			if got != tc.want {
				t.Fatalf("PlanGrant = %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		amount Credits
	}{{"zero", 0}, {"negative", -1000}, {"beyond the maximum", MaxCredits + 1}} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, err := PlanGrant(Wallet{Balance: -5, Debt: 5}, tc.amount)
			wantCode(t, err, CodeValidation)
		})
	}
}

func TestCheckCaps(t *testing.T) {
	daily, monthly := CreditsOf(10), CreditsOf(100)
	capped := Limits{DailyCap: &daily, MonthlyCap: &monthly}
	zero := Credits(0)
	for _, tc := range []struct {
		name   string
		lim    Limits
		spent  Spend
		charge Credits
		period string // the cap that refuses, or "" when allowed
	}{
		{"no caps", Limits{}, Spend{Day: MaxCredits, Month: MaxCredits}, CreditsOf(5), ""},
		{"under both caps", capped, Spend{Day: CreditsOf(2), Month: CreditsOf(20)}, CreditsOf(5), ""},
		{"exactly the daily cap", capped, Spend{Day: CreditsOf(5), Month: CreditsOf(5)}, CreditsOf(5), ""},
		{"one millicredit over the daily cap", capped, Spend{Day: CreditsOf(5), Month: CreditsOf(5)}, CreditsOf(5) + 1, "daily"},
		{"already over the daily cap", capped, Spend{Day: CreditsOf(11), Month: CreditsOf(11)}, 1, "daily"},
		{"exactly the monthly cap", capped, Spend{Day: 0, Month: CreditsOf(95)}, CreditsOf(5), ""},
		{"one millicredit over the monthly cap", capped, Spend{Day: 0, Month: CreditsOf(95)}, CreditsOf(5) + 1, "monthly"},
		{"daily checked before monthly", capped, Spend{Day: CreditsOf(9), Month: CreditsOf(99)}, CreditsOf(2), "daily"},
		{"monthly cap alone", Limits{MonthlyCap: &monthly}, Spend{Day: CreditsOf(99), Month: CreditsOf(99)}, CreditsOf(2), "monthly"},
		{"zero cap allows a free charge", Limits{DailyCap: &zero}, Spend{}, 0, ""},
		{"zero cap refuses any charge", Limits{DailyCap: &zero}, Spend{}, 1, "daily"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCaps("API key", tc.lim, tc.spent, tc.charge)
			if tc.period == "" {
				if err != nil {
					t.Fatalf("CheckCaps: %v", err)
				}
				return
			}
			wantCode(t, err, CodeSpendLimitExceeded)
			d := err.(*Error).Details
			limit, spent := tc.lim.DailyCap, tc.spent.Day
			if tc.period == "monthly" {
				limit, spent = tc.lim.MonthlyCap, tc.spent.Month
			}
			if d["limit_type"] != tc.period || d["limit"] != *limit || d["spent"] != spent || d["required"] != tc.charge || d["scope"] != "API key" {
				t.Fatalf("details %v, want %s cap %d, spent %d, required %d, scope API key", d, tc.period, *limit, spent, tc.charge)
			}
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	c := func(s string) *Credits { v := mustParseCredits(t, s); return &v }
	for _, tc := range []struct {
		name  string
		lim   Limits
		param string // "" when valid
	}{
		{"no limits", Limits{}, ""},
		{"both caps", Limits{DailyCap: c("10"), MonthlyCap: c("100"), OverdraftLimit: CreditsOf(5)}, ""},
		{"equal caps", Limits{DailyCap: c("10"), MonthlyCap: c("10")}, ""},
		{"zero caps", Limits{DailyCap: c("0"), MonthlyCap: c("0")}, ""},
		{"largest values", Limits{MonthlyCap: new(MaxCredits), OverdraftLimit: MaxCredits}, ""},
		{"negative daily cap", Limits{DailyCap: c("-0.001")}, "daily_cap"},
		{"negative monthly cap", Limits{MonthlyCap: c("-1")}, "monthly_cap"},
		{"daily cap beyond the maximum", Limits{DailyCap: new(MaxCredits + 1)}, "daily_cap"},
		{"daily cap above monthly", Limits{DailyCap: c("100.001"), MonthlyCap: c("100")}, "daily_cap"},
		{"negative overdraft", Limits{OverdraftLimit: -1}, "overdraft_limit"},
		{"overdraft beyond the maximum", Limits{OverdraftLimit: MaxCredits + 1}, "overdraft_limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.lim.Validate()
			if tc.param == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantCode(t, err, CodeValidation)
			if got := err.(*Error).Details["param"]; got != tc.param {
				t.Fatalf("param %v, want %s", got, tc.param)
			}
		})
	}
}

func TestLotLive(t *testing.T) {
	frozen := lot(1, 10, 5, nil)
	frozen.Frozen = true
	for _, tc := range []struct {
		name string
		lot  Lot
		want bool
	}{
		{"never expires", lot(1, 10, 5, nil), true},
		{"expires later", lot(1, 10, 5, at(time.Second)), true},
		{"expires now", lot(1, 10, 5, at(0)), false},
		{"expired", lot(1, 10, 5, at(-time.Second)), false},
		{"empty", lot(1, 10, 0, nil), false},
		{"frozen", frozen, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.lot.Live(t0); got != tc.want {
				t.Fatalf("Live = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWalletAvailable(t *testing.T) {
	if got := (Wallet{Balance: 1000, Held: 300}).Available(); got != 700 {
		t.Errorf("Available = %d, want 700", got)
	}
	if got := (Wallet{Balance: -100, Held: 50}).Available(); got != -150 {
		t.Errorf("Available = %d, want -150", got)
	}
}

func TestLimitsJSONNullRemovesCap(t *testing.T) {
	var lim Limits
	if err := json.Unmarshal([]byte(`{"daily_cap":null,"monthly_cap":12.5,"overdraft_limit":0}`), &lim); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if lim.DailyCap != nil || lim.MonthlyCap == nil || *lim.MonthlyCap != 12_500 {
		t.Fatalf("limits %+v", lim)
	}
}

func TestSuggestTopUpPack(t *testing.T) {
	packs := []CreditPack{{ID: "s", Credits: CreditsOf(1000)}, {ID: "g", Credits: CreditsOf(5500)}, {ID: "x", Credits: CreditsOf(12000)}}
	for _, tt := range []struct {
		shortfall, forecast Credits
		last, want          string
	}{
		{0, 0, "", "s"},
		{CreditsOf(1200), 0, "", "g"},                // a request's shortfall
		{0, CreditsOf(8784), "", "x"},                // the forecast's top-up: the overview's and the top-up page's alike
		{CreditsOf(1200), CreditsOf(8784), "s", "x"}, // the larger need; the last pack only if it covers it
		{-CreditsOf(5), 0, "g", "g"},
	} {
		if got, _ := SuggestTopUpPack(packs, tt.shortfall, tt.forecast, tt.last); got.ID != tt.want {
			t.Errorf("SuggestTopUpPack(%s, %s, %q) = %s, want %s", tt.shortfall, tt.forecast, tt.last, got.ID, tt.want)
		}
	}
}
