package handlers_test

import (
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The tests in this file show bugs found while writing the API tests. Each
// is skipped so the suite stays green; remove the skipBug once fixed. Run
// them with TALLY_SHOW_BUGS=1 to see them fail.

func skipBug(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("TALLY_SHOW_BUGS") == "" {
		t.Skip("BUG: " + msg)
	}
}

func TestBugPriceBookRoundTripWithoutPacks(t *testing.T) {
	skipBug(t, "db/pricebook.go PublishPriceBook compares the marshalled body, where nil Packs is \"packs\":null "+
		"but the [] that GET returns is \"packs\":[]; posting back an unchanged price book without packs makes a new version (201)")
	a := newTestAPI(t)
	pb := testPriceBook()
	pb.Packs = nil
	a.do("POST", "/api/v1/price-books", a.Admin, pb).want(t, http.StatusCreated)
	back := a.do("GET", "/api/v1/price-book", a.Read, nil).want(t, http.StatusOK)
	delete(back.Body, "object")
	r := a.do("POST", "/api/v1/price-books", a.Admin, back.Body)
	if r.Status != http.StatusOK || num(t, r.Body["version"]) != "2" {
		t.Fatalf("re-publishing the current price book: %d version %v, want 200 version 2", r.Status, r.Body["version"])
	}
	// Sending packs: [] the first time is the same price book as leaving it out.
	pb2 := testPriceBook()
	pb2.Packs = []billing.CreditPack{}
	a.do("POST", "/api/v1/price-books", a.Admin, pb2).want(t, http.StatusOK)
}

func TestBugGrantReplayShowsCurrentLot(t *testing.T) {
	skipBug(t, "db/ledger.go grantByEntry rebuilds a replayed grant from the lot's current row, "+
		"so lot.remaining in the replay is not what the original answer said")
	a := newTestAPI(t)
	cus := a.customer(t, "replayed-grant")
	body := map[string]any{"customer": cus, "credits": 100, "source": "purchase"}
	first := a.do("POST", "/api/v1/grants", a.Admin, body, "Idempotency-Key", "g").want(t, http.StatusCreated)
	a.usage(cus, "chat.request", "3", "").want(t, http.StatusCreated)
	again := a.do("POST", "/api/v1/grants", a.Admin, body, "Idempotency-Key", "g").want(t, http.StatusCreated)
	if string(again.Raw) != string(first.Raw) {
		t.Fatalf("replay answered\n%s\nbut the grant answered\n%s", again.Raw, first.Raw)
	}
}

func TestBugGrantReplayAfterExpiresAtPassed(t *testing.T) {
	skipBug(t, "db/ledger.go Grant validates expires_at against the clock before it looks the idempotency key up, "+
		"so retrying a successful grant once its expires_at has passed answers 422 instead of replaying it")
	a := newTestAPI(t)
	cus := a.customer(t, "late-retry")
	body := map[string]any{"customer": cus, "credits": 10, "source": "promo", "expires_at": testStart.Add(time.Hour)}
	first := a.do("POST", "/api/v1/grants", a.Admin, body, "Idempotency-Key", "promo-1").want(t, http.StatusCreated)
	a.Clock.Advance(2 * time.Hour)
	again := a.do("POST", "/api/v1/grants", a.Admin, body, "Idempotency-Key", "promo-1").want(t, http.StatusCreated)
	if again.Body["id"] != first.Body["id"] || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %s", again.Raw)
	}
}

func TestBugHoldsBypassSpendCaps(t *testing.T) {
	skipBug(t, "db/holds.go createHold (and db/ledger.go debit) check spend caps against spend so far only, "+
		"ignoring credits reserved by active holds, so holds admitted one by one exceed a daily cap once captured")
	a := newTestAPI(t)
	cus := a.customer(t, "held-capped")
	a.grant(t, cus, "100", billing.SourcePurchase)
	a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, map[string]any{"daily_cap": 12}).want(t, http.StatusOK)
	h1 := a.hold(t, cus, 8, 0)
	// 8 of the 12 are reserved: another 8 would pass the cap.
	r := a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": cus, "credits": 8})
	if r.Status == http.StatusCreated {
		a.do("POST", "/api/v1/holds/"+h1["id"].(string)+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 8}).want(t, http.StatusOK)
		a.do("POST", "/api/v1/holds/"+r.Body["id"].(string)+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 8}).want(t, http.StatusOK)
		t.Fatalf("a second hold of 8 was admitted under a daily cap of 12; spent today is now %v",
			a.usage(cus, "chat.request", "1", "").Body)
	}
	r.wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	// Likewise a debit may not use what a hold reserved under the cap.
	a.usage(cus, "document.analyze", "1", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
}

func TestBugExpiredHoldReadsActive(t *testing.T) {
	skipBug(t, "db/holds.go FindHold reports a hold past its expires_at as \"active\" until something sweeps it "+
		"(Balance sweeps first so its figures are never stale; GET /holds/{id} does not)")
	a := newTestAPI(t)
	cus := a.customer(t, "stale-hold")
	a.grant(t, cus, "10", billing.SourcePurchase)
	h := a.hold(t, cus, 5, 5)
	a.Clock.Advance(10 * time.Second)
	g := a.do("GET", "/api/v1/holds/"+h["id"].(string), a.Read, nil).want(t, http.StatusOK)
	if g.Body["status"] != billing.HoldExpired {
		t.Fatalf("hold 5 s past its expiry reads %v", g.Body["status"])
	}
}

func TestBugBearerSchemeCaseSensitive(t *testing.T) {
	skipBug(t, "handlers/auth.go requireKey matches the literal prefix \"Bearer \"; RFC 9110 section 11.1 makes "+
		"the scheme case-insensitive, so \"Authorization: bearer tsk_...\" is refused with 401")
	a := newTestAPI(t)
	a.do("GET", "/api/v1/customers", "", nil, "Authorization", "bearer "+a.Read).want(t, http.StatusOK)
	a.do("GET", "/api/v1/customers", "", nil, "Authorization", "BEARER "+a.Read).want(t, http.StatusOK)
}

func TestBugExternalIDWithSlash(t *testing.T) {
	skipBug(t, "handlers/customers.go and the other /customers/{id} handlers use c.Param(\"id\") as is; when the path "+
		"holds %2F Echo routes on the raw path and leaves the parameter escaped, so a customer whose external_id has a '/' "+
		"(accepted by POST /customers) cannot be read by external_id: GET /customers/org%2F42 answers 404")
	a := newTestAPI(t)
	id := a.customer(t, "org/42")
	for _, p := range []string{"", "/balance", "/usage", "/ledger"} {
		r := a.do("GET", "/api/v1/customers/"+url.PathEscape("org/42")+p, a.Read, nil).want(t, http.StatusOK)
		if p == "" && r.Body["id"] != id {
			t.Fatalf("customer: %s", r.Raw)
		}
	}
}
