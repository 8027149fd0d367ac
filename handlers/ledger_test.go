package handlers_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

func TestGrants(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "granted")

	body := map[string]any{"customer": "granted", "credits": 100, "source": "purchase", "reason": "Starter pack"}
	r := a.do("POST", "/api/v1/grants", a.Admin, body, "Idempotency-Key", "g-1").want(t, http.StatusCreated)
	if r.Body["object"] != "grant" || r.Body["customer"] != cus || num(t, r.Body["credits"]) != "100" || num(t, r.Body["balance_after"]) != "100" {
		t.Fatalf("grant: %s", r.Raw)
	}
	lot := obj(t, r.Body["lot"])
	if lot["source"] != "purchase" || num(t, lot["priority"]) != "50" || num(t, lot["remaining"]) != "100" || lot["reason"] != "Starter pack" {
		t.Fatalf("lot: %v", lot)
	}
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first grant marked as replayed")
	}

	t.Run("replay", func(t *testing.T) {
		again := a.do("POST", "/api/v1/grants", a.Admin, body, "Idempotency-Key", "g-1").want(t, http.StatusCreated)
		if again.Body["id"] != r.Body["id"] || again.Header.Get("Idempotent-Replayed") != "true" || num(t, again.Body["balance_after"]) != "100" {
			t.Fatalf("replay: %s", again.Raw)
		}
		if b := a.balance(t, cus); num(t, b["balance"]) != "100" {
			t.Fatalf("a replay granted again: %v", b["balance"])
		}
	})
	t.Run("same key, different body", func(t *testing.T) {
		for _, other := range []map[string]any{
			{"customer": "granted", "credits": 101, "source": "purchase", "reason": "Starter pack"},
			{"customer": "granted", "credits": 100, "source": "promo", "reason": "Starter pack"},
			{"customer": "granted", "credits": 100, "source": "purchase", "reason": "Other"},
		} {
			a.do("POST", "/api/v1/grants", a.Admin, other, "Idempotency-Key", "g-1").wantError(t, http.StatusConflict, billing.CodeIdempotencyConflict)
		}
		if b := a.balance(t, cus); num(t, b["balance"]) != "100" {
			t.Fatalf("balance %v", b["balance"])
		}
	})
	t.Run("validation", func(t *testing.T) {
		past := testStart.Add(-time.Hour).Format(time.RFC3339)
		now := testStart.Format(time.RFC3339)
		for _, tc := range []struct {
			name   string
			body   any
			status int
			typ    string
			param  string
		}{
			{"bad source", map[string]any{"customer": cus, "credits": 1, "source": "gift"}, 422, billing.CodeValidation, "source"},
			{"no source", map[string]any{"customer": cus, "credits": 1}, 422, billing.CodeValidation, "source"},
			{"zero credits", map[string]any{"customer": cus, "credits": 0, "source": "promo"}, 422, billing.CodeValidation, "credits"},
			{"negative credits", map[string]any{"customer": cus, "credits": -3, "source": "promo"}, 422, billing.CodeValidation, "credits"},
			{"past expires_at", map[string]any{"customer": cus, "credits": 1, "source": "promo", "expires_at": past}, 422, billing.CodeValidation, "expires_at"},
			{"expires_at now", map[string]any{"customer": cus, "credits": 1, "source": "promo", "expires_at": now}, 422, billing.CodeValidation, "expires_at"},
			{"bad priority", map[string]any{"customer": cus, "credits": 1, "source": "promo", "priority": 1001}, 422, billing.CodeValidation, "priority"},
			{"no customer", map[string]any{"credits": 1, "source": "promo"}, 422, billing.CodeValidation, "customer"},
			{"unknown customer", map[string]any{"customer": "nobody", "credits": 1, "source": "promo"}, 404, billing.CodeCustomerNotFound, "customer"},
			{"credits with 4 decimals", `{"customer": "granted", "credits": 0.0001, "source": "promo"}`, 400, billing.CodeInvalidRequest, ""},
			{"bad expires_at", `{"customer": "granted", "credits": 1, "source": "promo", "expires_at": "tomorrow"}`, 400, billing.CodeInvalidRequest, ""},
			{"unknown field", `{"customer": "granted", "credits": 1, "source": "promo", "lot": 1}`, 400, billing.CodeInvalidRequest, "lot"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := a.do("POST", "/api/v1/grants", a.Admin, tc.body).wantError(t, tc.status, tc.typ)
				if tc.param != "" && e["param"] != tc.param {
					t.Fatalf("param %v, want %s", e["param"], tc.param)
				}
			})
		}
		if b := a.balance(t, cus); num(t, b["balance"]) != "100" {
			t.Fatalf("refused grants changed the balance to %v", b["balance"])
		}
	})
	t.Run("fractional credits", func(t *testing.T) {
		g := a.do("POST", "/api/v1/grants", a.Admin, `{"customer": "granted", "credits": 0.125, "source": "adjustment"}`).want(t, http.StatusCreated)
		if num(t, g.Body["balance_after"]) != "100.125" || num(t, obj(t, g.Body["lot"])["priority"]) != "30" {
			t.Fatalf("grant: %s", g.Raw)
		}
	})
	a.checkLedgerInvariant(t, cus)
}

func TestBalanceLots(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "lots")
	in10 := testStart.Add(10 * 24 * time.Hour)
	in60 := testStart.Add(60 * 24 * time.Hour)
	a.grant(t, cus, "100", billing.SourcePurchase)
	a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": cus, "credits": 20, "source": "promo", "reason": "Welcome", "expires_at": in10}).
		want(t, http.StatusCreated)
	a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": cus, "credits": 30, "source": "subscription", "expires_at": in60}).
		want(t, http.StatusCreated)

	b := a.balance(t, cus)
	if b["object"] != "balance" || b["customer"] != cus || num(t, b["balance"]) != "150" || num(t, b["available"]) != "150" ||
		num(t, b["held"]) != "0" || num(t, b["overdraft_limit"]) != "0" {
		t.Fatalf("balance: %v", b)
	}
	lots := arr(t, b["lots"])
	if len(lots) != 3 {
		t.Fatalf("%d lots, want 3", len(lots))
	}
	// Listed in burn order: promo, subscription, purchase.
	for i, src := range []string{"promo", "subscription", "purchase"} {
		if obj(t, lots[i])["source"] != src {
			t.Fatalf("lot %d is %v, want %s", i, obj(t, lots[i])["source"], src)
		}
	}
	soon := arr(t, b["expiring_soon"])
	if len(soon) != 1 || obj(t, soon[0])["source"] != "promo" || num(t, b["expiring_soon_credits"]) != "20" {
		t.Fatalf("expiring_soon %v (%v credits), want the promo lot only", soon, b["expiring_soon_credits"])
	}
	if b2 := a.balance(t, "lots"); b2["customer"] != cus {
		t.Fatalf("balance by external id: %v", b2)
	}

	t.Run("a lot past its expiry leaves the balance", func(t *testing.T) {
		a.usage(cus, "image.generate", "1", "").want(t, http.StatusCreated) // burns 5 of the promo lot
		a.Clock.Advance(11 * 24 * time.Hour)
		b := a.balance(t, cus)
		if num(t, b["balance"]) != "130" || len(arr(t, b["lots"])) != 2 {
			t.Fatalf("balance after expiry: %v", b)
		}
		// The subscription lot expires in 49 days: not soon.
		if soon := arr(t, b["expiring_soon"]); len(soon) != 0 || num(t, b["expiring_soon_credits"]) != "0" {
			t.Fatalf("expiring_soon: %v", soon)
		}
		a.Clock.Advance(20 * 24 * time.Hour) // now 29 days
		b = a.balance(t, cus)
		if soon := arr(t, b["expiring_soon"]); len(soon) != 1 || obj(t, soon[0])["source"] != "subscription" || num(t, b["expiring_soon_credits"]) != "30" {
			t.Fatalf("expiring_soon: %v", soon)
		}
		es, _ := a.ledgerSum(t, cus)
		if es[0]["type"] != billing.EntryExpiry || num(t, es[0]["amount"]) != "-15" {
			t.Fatalf("newest entry %v, want an expiry of 15", es[0])
		}
		a.checkLedgerInvariant(t, cus)
	})
}

func TestLedger(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "ledgered")
	purchase := a.grant(t, cus, "100", billing.SourcePurchase)
	promo := a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": cus, "credits": 10, "source": "promo",
		"reason": "Welcome credits", "expires_at": testStart.Add(7 * 24 * time.Hour)}).want(t, http.StatusCreated).Body
	purchaseLot := obj(t, purchase["lot"])["id"]
	promoLot := obj(t, promo["lot"])["id"]

	// 15 credits: the promo lot (10) burns before the purchase (5), though it is newer.
	debit := a.usage(cus, "image.generate", "3", "").want(t, http.StatusCreated).Body
	h := a.hold(t, cus, 20, 0)
	a.do("POST", "/api/v1/holds/"+h["id"].(string)+"/release", a.Meter, nil).want(t, http.StatusOK)

	es := a.walk(t, "/api/v1/customers/"+cus+"/ledger")
	types := []string{}
	for _, e := range es {
		types = append(types, e["type"].(string))
		if e["object"] != "entry" || e["customer"] != cus {
			t.Fatalf("entry: %v", e)
		}
	}
	want := []string{billing.EntryHoldRelease, billing.EntryHold, billing.EntryDebit, billing.EntryGrant, billing.EntryGrant}
	if len(types) != len(want) {
		t.Fatalf("entries %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("entries %v, want %v", types, want)
		}
	}

	rel, hold, deb, g2, g1 := es[0], es[1], es[2], es[3], es[4]
	if g1["lot"] != purchaseLot || g1["source"] != "purchase" || num(t, g1["amount"]) != "100" || num(t, g1["balance_after"]) != "100" {
		t.Fatalf("purchase grant: %v", g1)
	}
	if g2["lot"] != promoLot || g2["source"] != "promo" || g2["reason"] != "Welcome credits" || num(t, g2["balance_after"]) != "110" {
		t.Fatalf("promo grant: %v", g2)
	}
	if deb["id"] != debit["id"] || num(t, deb["amount"]) != "-15" || deb["feature"] != "image.generate" ||
		num(t, deb["quantity"]) != "3" || num(t, deb["price_version"]) != "1" || num(t, deb["balance_after"]) != "95" {
		t.Fatalf("debit: %v", deb)
	}
	burns := arr(t, deb["burns"])
	if len(burns) != 2 {
		t.Fatalf("burns %v, want two", burns)
	}
	// Listed in the order they were burned.
	if obj(t, burns[0])["source"] != "promo" || obj(t, burns[1])["source"] != "purchase" {
		t.Fatalf("burns %v, want promo then purchase", burns)
	}
	byLot := map[any]map[string]any{}
	for _, b := range burns {
		byLot[obj(t, b)["lot"]] = obj(t, b)
	}
	if pb := byLot[promoLot]; pb == nil || num(t, pb["credits"]) != "10" || pb["source"] != "promo" || pb["reason"] != "Welcome credits" || pb["expires_at"] == nil {
		t.Fatalf("promo burn: %v", pb)
	}
	if pb := byLot[purchaseLot]; pb == nil || num(t, pb["credits"]) != "5" || pb["source"] != "purchase" || pb["expires_at"] != nil {
		t.Fatalf("purchase burn: %v", pb)
	}
	if num(t, hold["amount"]) != "0" || num(t, hold["held_delta"]) != "20" || hold["hold"] != h["id"] || num(t, hold["balance_after"]) != "95" {
		t.Fatalf("hold entry: %v", hold)
	}
	if num(t, rel["amount"]) != "0" || num(t, rel["held_delta"]) != "-20" || rel["hold"] != h["id"] {
		t.Fatalf("release entry: %v", rel)
	}

	t.Run("type filter", func(t *testing.T) {
		gs := a.walk(t, "/api/v1/customers/"+cus+"/ledger?type=grant")
		if len(gs) != 2 {
			t.Fatalf("%d grants, want 2", len(gs))
		}
	})
	t.Run("pages", func(t *testing.T) {
		ids := map[string]bool{}
		for _, e := range es {
			ids[e["id"].(string)] = true
		}
		checkPages(t, a.walk(t, "/api/v1/customers/"+cus+"/ledger?limit=2"), ids)
	})
	a.checkLedgerInvariant(t, cus)
}

func TestPriceBooks(t *testing.T) {
	a := newTestAPI(t)

	cur := a.do("GET", "/api/v1/price-book", a.Read, nil).want(t, http.StatusOK)
	if cur.Body["object"] != "price_book" || num(t, cur.Body["version"]) != "1" || cur.Body["currency"] != "usd" ||
		len(arr(t, cur.Body["features"])) != 4 || len(arr(t, cur.Body["packs"])) != 2 {
		t.Fatalf("price book: %s", cur.Raw)
	}

	pb := testPriceBook()
	pb.Features[0].Credits = billing.CreditsOf(2) // chat.request now costs 2
	r := a.do("POST", "/api/v1/price-books", a.Admin, pb).want(t, http.StatusCreated)
	if num(t, r.Body["version"]) != "2" || r.Body["object"] != "price_book" {
		t.Fatalf("publish: %s", r.Raw)
	}
	again := a.do("POST", "/api/v1/price-books", a.Admin, pb).want(t, http.StatusOK)
	if num(t, again.Body["version"]) != "2" {
		t.Fatalf("unchanged publish: %s", again.Raw)
	}
	// What GET returns can be posted back unchanged.
	back := a.do("GET", "/api/v1/price-book", a.Read, nil).want(t, http.StatusOK)
	delete(back.Body, "object")
	a.do("POST", "/api/v1/price-books", a.Admin, back.Body).want(t, http.StatusOK)

	t.Run("list", func(t *testing.T) {
		l := a.do("GET", "/api/v1/price-books", a.Read, nil).want(t, http.StatusOK)
		data := arr(t, l.Body["data"])
		if len(data) != 2 || num(t, obj(t, data[0])["version"]) != "2" || num(t, obj(t, data[1])["version"]) != "1" {
			t.Fatalf("list: %s", l.Raw)
		}
	})
	t.Run("by version", func(t *testing.T) {
		v1 := a.do("GET", "/api/v1/price-books/1", a.Read, nil).want(t, http.StatusOK)
		f := obj(t, arr(t, v1.Body["features"])[0])
		if f["key"] != "chat.request" || num(t, f["credits"]) != "1" {
			t.Fatalf("version 1: %s", v1.Raw)
		}
		for _, v := range []string{"3", "0", "-1", "abc"} {
			a.do("GET", "/api/v1/price-books/"+v, a.Read, nil).wantError(t, http.StatusNotFound, billing.CodeNotFound)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		noFeatures := testPriceBook()
		noFeatures.Features = nil
		badKey := testPriceBook()
		badKey.Features[0].Key = "Chat Request"
		dup := testPriceBook()
		dup.Features[1].Key = dup.Features[0].Key
		badCurrency := testPriceBook()
		badCurrency.Currency = "dollars"
		badPack := testPriceBook()
		badPack.Packs[0].Price.Amount = 0
		for name, body := range map[string]billing.PriceBook{
			"no features": noFeatures, "bad key": badKey, "duplicate feature": dup, "bad currency": badCurrency, "free pack": badPack,
		} {
			t.Run(name, func(t *testing.T) {
				a.do("POST", "/api/v1/price-books", a.Admin, body).wantError(t, http.StatusUnprocessableEntity, billing.CodeValidation)
			})
		}
		a.do("POST", "/api/v1/price-books", a.Admin, `{"features": [{"key": "x", "credits": 1.00001}]}`).
			wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
		a.do("POST", "/api/v1/price-books", a.Admin, `{"features": [], "discount": 5}`).
			wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
		if l := a.do("GET", "/api/v1/price-books", a.Read, nil).want(t, http.StatusOK); len(arr(t, l.Body["data"])) != 2 {
			t.Fatalf("a refused price book was stored: %s", l.Raw)
		}
	})
	t.Run("debits record the version they were priced with", func(t *testing.T) {
		cus := a.customer(t, "priced")
		a.grant(t, cus, "100", billing.SourcePurchase)
		d := a.usage(cus, "chat.request", "1", "priced-1").want(t, http.StatusCreated)
		if num(t, d.Body["price_version"]) != "2" || num(t, d.Body["credits_charged"]) != "2" {
			t.Fatalf("debit: %s", d.Raw)
		}
		q := a.do("GET", "/api/v1/quote?customer=priced&feature=chat.request", a.Read, nil).want(t, http.StatusOK)
		if num(t, q.Body["price_version"]) != "2" || num(t, q.Body["credits"]) != "2" {
			t.Fatalf("quote: %s", q.Raw)
		}
		pb3 := testPriceBook()
		pb3.Features[0].Credits = billing.CreditsOf(3)
		a.do("POST", "/api/v1/price-books", a.Admin, pb3).want(t, http.StatusCreated)
		d3 := a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated)
		if num(t, d3.Body["price_version"]) != "3" || num(t, d3.Body["credits_charged"]) != "3" {
			t.Fatalf("debit after v3: %s", d3.Raw)
		}
		// The ledger keeps each debit's own version; a replay keeps its original price.
		us := a.walk(t, "/api/v1/customers/"+cus+"/usage")
		if len(us) != 2 || num(t, us[0]["price_version"]) != "3" || num(t, us[1]["price_version"]) != "2" {
			t.Fatalf("usage: %v", us)
		}
		replay := a.usage(cus, "chat.request", "1", "priced-1").want(t, http.StatusCreated)
		if replay.Header.Get("Idempotent-Replayed") != "true" || num(t, replay.Body["price_version"]) != "2" || num(t, replay.Body["credits_charged"]) != "2" {
			t.Fatalf("replay after v3: %s", replay.Raw)
		}
	})
	t.Run("a feature removed from the price book", func(t *testing.T) {
		pb4 := testPriceBook()
		pb4.Features = pb4.Features[1:] // no chat.request
		a.do("POST", "/api/v1/price-books", a.Admin, pb4).want(t, http.StatusCreated)
		e := a.usage("priced", "chat.request", "1", "").wantError(t, http.StatusUnprocessableEntity, billing.CodeUnknownFeature)
		if num(t, e["price_version"]) != "4" {
			t.Fatalf("details: %v", e)
		}
		// A quote says the same.
		q := a.do("GET", "/api/v1/quote?customer=priced&feature=chat.request", a.Read, nil).wantError(t, http.StatusUnprocessableEntity, billing.CodeUnknownFeature)
		if num(t, q["price_version"]) != "4" || q["message"] != e["message"] {
			t.Fatalf("quote: %v, debit: %v", q, e)
		}
	})
}

func TestNoPriceBook(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{noPriceBook: true})
	cus := a.customer(t, "early")
	a.grant(t, cus, "10", billing.SourcePurchase)
	a.do("GET", "/api/v1/price-book", a.Read, nil).wantError(t, http.StatusNotFound, billing.CodeNotFound)
	if l := a.do("GET", "/api/v1/price-books", a.Read, nil).want(t, http.StatusOK); len(arr(t, l.Body["data"])) != 0 {
		t.Fatalf("list: %s", l.Raw)
	}
	a.usage(cus, "chat.request", "1", "").wantError(t, http.StatusUnprocessableEntity, billing.CodeUnknownFeature)
	a.do("GET", "/api/v1/quote?customer=early&feature=chat.request", a.Read, nil).wantError(t, http.StatusUnprocessableEntity, billing.CodeUnknownFeature)
	r := a.do("POST", "/api/v1/price-books", a.Admin, testPriceBook()).want(t, http.StatusCreated)
	if num(t, r.Body["version"]) != "1" {
		t.Fatalf("first version: %s", r.Raw)
	}
	a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated)
}

func TestAdjustments(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "adjusted")
	a.grant(t, cus, "10", "purchase")
	body := map[string]any{"customer": "adjusted", "credits": -2.5, "reason": "Refund of a failed job"}
	r := a.do("POST", "/api/v1/adjustments", a.Admin, body, "Idempotency-Key", "adj-1").want(t, http.StatusCreated)
	if r.Body["type"] != "adjustment" || num(t, r.Body["amount"]) != "-2.5" || num(t, r.Body["balance_after"]) != "7.5" || r.Body["reason"] != "Refund of a failed job" {
		t.Fatalf("adjustment: %s", r.Raw)
	}
	if burns, _ := r.Body["burns"].([]any); len(burns) != 1 {
		t.Fatalf("adjustment burns: %s", r.Raw)
	}
	again := a.do("POST", "/api/v1/adjustments", a.Admin, body, "Idempotency-Key", "adj-1").want(t, http.StatusCreated)
	if again.Body["id"] != r.Body["id"] || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %s", again.Raw)
	}
	up := a.do("POST", "/api/v1/adjustments", a.Admin, map[string]any{"customer": cus, "credits": 4, "reason": "Goodwill"}).want(t, http.StatusCreated)
	if num(t, up.Body["balance_after"]) != "11.5" || up.Body["lot"] == nil {
		t.Fatalf("positive adjustment: %s", up.Raw)
	}
	// Too large a deduction says how much may be taken out, not how to top up.
	e := a.do("POST", "/api/v1/adjustments", a.Admin, map[string]any{"customer": cus, "credits": -100, "reason": "x"}).wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
	if msg, _ := e["message"].(string); !strings.Contains(msg, "11.5 available") || !strings.Contains(msg, "Take out at most") || strings.Contains(msg, "portal-sessions") {
		t.Errorf("deduction beyond the available credits: %q", msg)
	}
	if num(t, e["required"]) != "100" || num(t, e["available"]) != "11.5" || e["param"] != "credits" {
		t.Errorf("deduction beyond the available credits: details %v", e)
	}
	a.do("POST", "/api/v1/adjustments", a.Admin, map[string]any{"customer": cus, "credits": 1}).wantError(t, http.StatusUnprocessableEntity, billing.CodeValidation)
	// A reason of spaces is no reason: it read as a blank line in the customer's ledger.
	if e := a.do("POST", "/api/v1/adjustments", a.Admin, map[string]any{"customer": cus, "credits": 1, "reason": "   "}).
		wantError(t, http.StatusUnprocessableEntity, billing.CodeValidation); e["param"] != "reason" {
		t.Errorf("blank reason: %v", e)
	}
	a.do("POST", "/api/v1/adjustments", a.Meter, body).wantError(t, http.StatusForbidden, billing.CodeForbidden)
	if b := a.balance(t, cus); num(t, b["balance"]) != "11.5" {
		t.Fatalf("balance %v", b["balance"])
	}
}
