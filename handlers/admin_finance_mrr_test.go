package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
)

// TestAdminFinanceMRRHistory: the finance view's MRR at each of the last 12
// month ends, hand computed. On 10 Mar Starter ($19.00) and Pro ($49.00)
// start in the sandbox; Pro is canceled at its period's end. A month later
// (11 Apr) Starter has renewed and Pro has ended: end of February $0.00,
// end of March $68.00 (2 plans), April to date $19.00 (1 plan).
func TestAdminFinanceMRRHistory(t *testing.T) {
	p, a := planAdminAPI(t)
	ctx := context.Background()
	idA, _ := p.shopper(t, "fa")
	idB, _ := p.shopper(t, "fb")
	subscribe(t, p, idA, "starter")
	subscribe(t, p, idB, "pro")
	if _, err := p.DB.CancelSubscription(ctx, idB, true, billing.CustomerActor(idB)); err != nil {
		t.Fatal(err)
	}
	p.Clock.Advance(32 * 24 * time.Hour)
	if _, err := p.DB.AdvanceSandbox(ctx, 0); err != nil { // the sandbox follows the clock
		t.Fatal(err)
	}
	v := a.signIn(t, "owner@staff.test") // finance is the owners'
	r := v.get("/admin/finance").want(t, http.StatusOK)
	rows := doc(t, r).Find(`[data-testid="mrr-history-usd"] [data-testid="mrr-month"]`)
	if rows.Length() != 12 {
		t.Fatalf("%d months, want 12", rows.Length())
	}
	got := map[string]string{}
	rows.Each(func(_ int, s *goquery.Selection) {
		m, _ := s.Attr("data-month")
		got[m] = strings.TrimSpace(s.Find(`[data-testid="mrr-month-amount"]`).Text())
	})
	now := p.Clock.Now().UTC()
	thisMonth := now.Format("2006-01")
	last := now.AddDate(0, -1, 0).Format("2006-01")
	before := now.AddDate(0, -2, 0).Format("2006-01")
	for m, want := range map[string]string{before: "$0.00", last: "$68.00", thisMonth: "$19.00"} {
		if got[m] != want {
			t.Errorf("MRR at the end of %s = %q, want %q (all: %v)", m, got[m], want, got)
		}
	}
	if last := rows.Last(); !strings.Contains(last.Text(), "(to date)") {
		t.Errorf("the current month is not marked to date: %q", last.Text())
	}
}
