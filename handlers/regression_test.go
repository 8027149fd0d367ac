package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// Regression tests for bugs found while writing the API tests; each failed
// before its fix.

func TestRegressionPriceBookRoundTripWithoutPacks(t *testing.T) {
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

func TestRegressionGrantReplayShowsCurrentLot(t *testing.T) {
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

func TestRegressionGrantReplayAfterExpiresAtPassed(t *testing.T) {
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

func TestRegressionHoldsBypassAPIKeySpendCaps(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "key-held-capped")
	a.grant(t, cus, "100", billing.SourcePurchase)
	daily := billing.CreditsOf(12)
	if _, err := a.DB.UpdateAPIKeyLimits(context.Background(), a.MeterKey.ID, billing.Limits{DailyCap: &daily}, 0); err != nil {
		t.Fatal(err)
	}
	a.hold(t, cus, 8, 0)
	a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": cus, "credits": 8}).
		wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	a.usage(cus, "document.analyze", "1", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
}

func TestRegressionExpiredHoldReadsActive(t *testing.T) {
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

func TestRegressionBearerSchemeCaseSensitive(t *testing.T) {
	a := newTestAPI(t)
	a.do("GET", "/api/v1/customers", "", nil, "Authorization", "bearer "+a.Read).want(t, http.StatusOK)
	a.do("GET", "/api/v1/customers", "", nil, "Authorization", "BEARER "+a.Read).want(t, http.StatusOK)
}

func TestRegressionExternalIDWithSlash(t *testing.T) {
	a := newTestAPI(t)
	id := a.customer(t, "org/42")
	for _, p := range []string{"", "/balance", "/usage", "/ledger"} {
		r := a.do("GET", "/api/v1/customers/"+url.PathEscape("org/42")+p, a.Read, nil).want(t, http.StatusOK)
		if p == "" && r.Body["id"] != id {
			t.Fatalf("customer: %s", r.Raw)
		}
	}
}

// A percent sign in an external_id is the id's own: the path is decoded
// once. It was decoded twice, so "a%41" (sent as a%2541) reached "aA", and
// a limits PUT changed the other customer.
func TestRegressionExternalIDWithPercent(t *testing.T) {
	a := newTestAPI(t)
	plain := a.customer(t, "aA")
	pct := a.customer(t, "a%41")
	both := a.customer(t, "org/a%41")
	for ext, want := range map[string]string{"aA": plain, "a%41": pct, "org/a%41": both} {
		for _, p := range []string{"", "/balance", "/ledger"} {
			r := a.do("GET", "/api/v1/customers/"+url.PathEscape(ext)+p, a.Read, nil).want(t, http.StatusOK)
			if p == "" && r.Body["id"] != want {
				t.Fatalf("GET %q reached %v, want %s", ext, r.Body["id"], want)
			}
		}
	}
	a.do("PUT", "/api/v1/customers/"+url.PathEscape("a%41")+"/limits", a.Admin, `{"daily_cap": 1}`).want(t, http.StatusOK)
	for ext, want := range map[string]string{"aA": "<nil>", "a%41": "1"} {
		r := a.do("GET", "/api/v1/customers/"+url.PathEscape(ext), a.Read, nil).want(t, http.StatusOK)
		if got := fmt.Sprint(r.Body["limits"].(map[string]any)["daily_cap"]); got != want {
			t.Fatalf("%q daily cap %v, want %v: %s", ext, got, want, r.Raw)
		}
	}
}

// An empty idempotency key, in the header or the body, or two headers, is
// refused: read as no key (or the first), a client's retries charged again.
func TestRegressionEmptyIdempotencyKey(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "keyed")
	a.grant(t, cus, "100", billing.SourcePromo)
	body := map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1}
	for name, r := range map[string]response{
		"empty header":  a.do("POST", "/api/v1/usage", a.Meter, body, "Idempotency-Key", ""),
		"blank header":  a.do("POST", "/api/v1/usage", a.Meter, body, "Idempotency-Key", "  "),
		"two headers":   a.do("POST", "/api/v1/usage", a.Meter, body, "Idempotency-Key", "dupA", "Idempotency-Key", "dupB"),
		"empty field":   a.do("POST", "/api/v1/usage", a.Meter, `{"customer": "`+cus+`", "feature": "chat.request", "quantity": 1, "idempotency_key": ""}`),
		"empty in hold": a.do("POST", "/api/v1/holds", a.Meter, `{"customer": "`+cus+`", "credits": 1, "idempotency_key": ""}`),
		"empty in a batch's event": a.do("POST", "/api/v1/usage/batch", a.Meter,
			`{"events": [{"customer": "`+cus+`", "feature": "chat.request", "quantity": 1, "idempotency_key": ""}]}`),
	} {
		if r.Status == http.StatusOK { // a batch answers per event
			if !strings.Contains(string(r.Raw), `"param":"idempotency_key"`) {
				t.Errorf("%s: %s", name, r.Raw)
			}
			continue
		}
		e := r.wantError(t, http.StatusBadRequest, "invalid_request")
		if e["param"] != "idempotency_key" {
			t.Errorf("%s: %v", name, e)
		}
	}
	if b := a.balance(t, cus); num(t, b["balance"]) != "100" {
		t.Fatalf("refused requests charged: %v", b)
	}
	// A metadata tag of that name is no key, and no mistake.
	a.do("POST", "/api/v1/usage", a.Meter, `{"customer": "`+cus+`", "feature": "chat.request", "quantity": 1, "metadata": {"idempotency_key": "x"}}`).
		want(t, http.StatusCreated)
	// A key of one character is a key.
	a.do("POST", "/api/v1/usage", a.Meter, body, "Idempotency-Key", "k").want(t, http.StatusCreated)
	a.do("POST", "/api/v1/usage", a.Meter, body, "Idempotency-Key", "k").want(t, http.StatusCreated)
	if b := a.balance(t, cus); num(t, b["balance"]) != "98" {
		t.Fatalf("a retried key charged twice: %v", b)
	}
}

func TestRegressionBatchDecodeErrorsNotCounted(t *testing.T) {
	a := newTestAPI(t)
	a.do("POST", "/api/v1/usage/batch", a.Meter, `{"events": [{"customer": "x", "feature": "chat.request", "quantity": 1.23456}]}`).
		want(t, http.StatusOK)
	if got := a.metric(t, `tally_rejections_total{type="invalid_request"}`); got != "1" {
		t.Fatalf("tally_rejections_total{type=\"invalid_request\"} = %q, want 1", got)
	}
}

// A query parameter a read does not take, one given twice or empty, and an
// unknown ledger type are refused, as a body's unknown field is. They were
// ignored: "?qty=4" priced one unit and "?type=grants" answered [].
func TestRegressionStrictQuery(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "q")
	a.grant(t, cus, "100", billing.SourcePromo)
	for path, param := range map[string]string{
		"/api/v1/quote?customer=" + cus + "&feature=chat.request&qty=4":                   "qty",
		"/api/v1/quote?customer=" + cus + "&feature=chat.request&quantity=1&quantity=500": "quantity",
		"/api/v1/quote?customer=" + cus + "&feature=chat.request&quantity=":               "quantity",
		"/api/v1/customers/" + cus + "/ledger?type=grants":                                "type",
		"/api/v1/customers/" + cus + "/ledger?typ=grant":                                  "typ",
		"/api/v1/customers/" + cus + "/usage?type=debit":                                  "type",
		"/api/v1/customers/" + cus + "/balance?expand=lots":                               "expand",
		"/api/v1/customers?limit=10&cursor=":                                              "cursor",
		"/api/v1/customers?cursor=bogus":                                                  "cursor",
	} {
		e := a.do("GET", path, a.Read, nil).wantError(t, http.StatusBadRequest, "invalid_request")
		if e["param"] != param {
			t.Errorf("%s: %v, want param %s", path, e, param)
		}
	}
	// What each read takes still works, and the key is checked first.
	a.do("GET", "/api/v1/quote?customer="+cus+"&feature=chat.request&quantity=4", a.Read, nil).want(t, http.StatusOK)
	a.do("GET", "/api/v1/customers/"+cus+"/ledger?type=grant&limit=5", a.Read, nil).want(t, http.StatusOK)
	a.do("GET", "/api/v1/customers/"+cus+"/ledger?type=grants", "", nil).want(t, http.StatusUnauthorized)
}

// A customer's e-mail and name can change (PATCH), and a repeated create
// naming other ones says so instead of answering 200 with the old ones.
func TestRegressionUpdateCustomer(t *testing.T) {
	a := newTestAPI(t)
	a.do("POST", "/api/v1/customers", a.Meter, map[string]any{"external_id": "user_42", "email": "ada@example.com", "name": "Ada"}).
		want(t, http.StatusCreated)
	a.do("POST", "/api/v1/customers", a.Meter, map[string]any{"external_id": "user_42", "email": "ada@example.com"}).want(t, http.StatusOK)
	e := a.do("POST", "/api/v1/customers", a.Meter, map[string]any{"external_id": "user_42", "email": "new@example.com"}).
		wantError(t, http.StatusConflict, "conflict")
	if msg, _ := e["message"].(string); !strings.Contains(msg, "PATCH /api/v1/customers/") {
		t.Fatalf("repeat with another email: %v", e)
	}
	r := a.do("PATCH", "/api/v1/customers/user_42", a.Meter, map[string]any{"email": " new@example.com "}).want(t, http.StatusOK)
	if r.Body["email"] != "new@example.com" || r.Body["name"] != "Ada" {
		t.Fatalf("after PATCH: %s", r.Raw)
	}
	r = a.do("PATCH", "/api/v1/customers/user_42", a.Meter, map[string]any{"name": ""}).want(t, http.StatusOK)
	if r.Body["email"] != "new@example.com" || r.Body["name"] != "" {
		t.Fatalf("after clearing the name: %s", r.Raw)
	}
	a.do("PATCH", "/api/v1/customers/user_42", a.Meter, map[string]any{"email": "not an address"}).wantError(t, http.StatusUnprocessableEntity, "validation_failed")
	a.do("PATCH", "/api/v1/customers/user_42", a.Meter, map[string]any{}).wantError(t, http.StatusUnprocessableEntity, "validation_failed")
	a.do("PATCH", "/api/v1/customers/user_42", a.Meter, map[string]any{"external_id": "x"}).wantError(t, http.StatusBadRequest, "invalid_request")
	a.do("PATCH", "/api/v1/customers/nobody", a.Meter, map[string]any{"name": "x"}).wantError(t, http.StatusNotFound, "customer_not_found")
	a.do("PATCH", "/api/v1/customers/user_42", a.Read, map[string]any{"name": "x"}).wantError(t, http.StatusForbidden, "forbidden")
	if g := a.do("GET", "/api/v1/customers/user_42", a.Read, nil).want(t, http.StatusOK); g.Body["email"] != "new@example.com" {
		t.Fatalf("stored: %s", g.Raw)
	}
}
