package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

// hold creates a hold and returns it.
func (a *testAPI) hold(t *testing.T, customer string, amount int, ttl int) map[string]any {
	t.Helper()
	body := map[string]any{"customer": customer, "credits": amount}
	if ttl > 0 {
		body["ttl_seconds"] = ttl
	}
	return a.do("POST", "/api/v1/holds", a.Meter, body).want(t, http.StatusCreated).Body
}

func TestHolds(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "streamer")
	a.grant(t, cus, "50", billing.SourcePurchase)

	h := a.hold(t, cus, 20, 0)
	id, _ := h["id"].(string)
	if h["object"] != "hold" || h["status"] != billing.HoldActive || num(t, h["credits"]) != "20" || h["customer"] != cus {
		t.Fatalf("hold: %v", h)
	}
	exp, err := time.Parse(time.RFC3339Nano, h["expires_at"].(string))
	if err != nil || !exp.Equal(testStart.Add(billing.DefaultHoldTTL)) {
		t.Fatalf("expires_at %v, want now + 10 minutes", h["expires_at"])
	}
	b := a.balance(t, cus)
	if num(t, b["balance"]) != "50" || num(t, b["held"]) != "20" || num(t, b["available"]) != "30" {
		t.Fatalf("balance after hold: %v", b)
	}

	t.Run("402 when not enough is available", func(t *testing.T) {
		e := a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": cus, "credits": 31}).
			wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
		if num(t, e["available"]) != "30" || num(t, e["held"]) != "20" || num(t, e["required"]) != "31" {
			t.Fatalf("details: %v", e)
		}
		// Usage is measured against available, not balance.
		a.usage(cus, "document.analyze", "4", "").wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
	})
	t.Run("get", func(t *testing.T) {
		g := a.do("GET", "/api/v1/holds/"+id, a.Read, nil).want(t, http.StatusOK)
		if g.Body["id"] != id || g.Body["status"] != billing.HoldActive || g.Body["closed_at"] != nil {
			t.Fatalf("hold: %s", g.Raw)
		}
	})

	capture := map[string]any{"feature": "image.generate", "quantity": 3} // 15 credits
	var first response
	t.Run("capture charges the actual usage and releases the rest", func(t *testing.T) {
		first = a.do("POST", "/api/v1/holds/"+id+"/capture", a.Meter, capture).want(t, http.StatusOK)
		if first.Body["status"] != billing.HoldCaptured || num(t, first.Body["credits_charged"]) != "15" || first.Body["closed_at"] == nil {
			t.Fatalf("capture: %s", first.Raw)
		}
		d := obj(t, first.Body["debit"])
		if d["hold"] != id || num(t, d["credits_charged"]) != "15" || num(t, d["balance_after"]) != "35" || d["feature"] != "image.generate" {
			t.Fatalf("debit: %v", d)
		}
		b := a.balance(t, cus)
		if num(t, b["balance"]) != "35" || num(t, b["held"]) != "0" || num(t, b["available"]) != "35" {
			t.Fatalf("balance after capture: %v", b)
		}
	})
	t.Run("capture replay", func(t *testing.T) {
		again := a.do("POST", "/api/v1/holds/"+id+"/capture", a.Meter, capture).want(t, http.StatusOK)
		if again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay not marked")
		}
		if obj(t, again.Body["debit"])["id"] != obj(t, first.Body["debit"])["id"] || num(t, again.Body["credits_charged"]) != "15" {
			t.Fatalf("replay answered %s, first %s", again.Raw, first.Raw)
		}
		if b := a.balance(t, cus); num(t, b["balance"]) != "35" {
			t.Fatalf("a replay charged again: %v", b["balance"])
		}
	})
	t.Run("capture again with another body", func(t *testing.T) {
		e := a.do("POST", "/api/v1/holds/"+id+"/capture", a.Meter, map[string]any{"feature": "image.generate", "quantity": 1}).
			wantError(t, http.StatusConflict, billing.CodeHoldNotActive)
		if e["status"] != billing.HoldCaptured {
			t.Fatalf("details: %v", e)
		}
	})
	t.Run("release after capture", func(t *testing.T) {
		a.do("POST", "/api/v1/holds/"+id+"/release", a.Meter, nil).wantError(t, http.StatusConflict, billing.CodeHoldNotActive)
	})

	t.Run("release", func(t *testing.T) {
		h := a.hold(t, cus, 10, 60)
		hid := h["id"].(string)
		r := a.do("POST", "/api/v1/holds/"+hid+"/release", a.Meter, nil).want(t, http.StatusOK)
		if r.Body["status"] != billing.HoldReleased || r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("release: %s", r.Raw)
		}
		if b := a.balance(t, cus); num(t, b["held"]) != "0" || num(t, b["available"]) != "35" {
			t.Fatalf("balance after release: %v", b)
		}
		again := a.do("POST", "/api/v1/holds/"+hid+"/release", a.Meter, nil).want(t, http.StatusOK)
		if again.Body["status"] != billing.HoldReleased || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("second release: %s", again.Raw)
		}
		e := a.do("POST", "/api/v1/holds/"+hid+"/capture", a.Meter, capture).wantError(t, http.StatusConflict, billing.CodeHoldNotActive)
		if e["status"] != billing.HoldReleased {
			t.Fatalf("details: %v", e)
		}
		if b := a.balance(t, cus); num(t, b["balance"]) != "35" {
			t.Fatalf("capture after release charged: %v", b["balance"])
		}
	})

	t.Run("hold_not_found", func(t *testing.T) {
		a.do("GET", "/api/v1/holds/hld_nope", a.Read, nil).wantError(t, http.StatusNotFound, billing.CodeHoldNotFound)
		a.do("POST", "/api/v1/holds/hld_nope/capture", a.Meter, capture).wantError(t, http.StatusNotFound, billing.CodeHoldNotFound)
		a.do("POST", "/api/v1/holds/hld_nope/release", a.Meter, nil).wantError(t, http.StatusNotFound, billing.CodeHoldNotFound)
	})

	t.Run("invalid requests", func(t *testing.T) {
		h := a.hold(t, cus, 1, 0)
		hid := h["id"].(string)
		for _, tc := range []struct {
			name   string
			path   string
			body   any
			status int
			typ    string
		}{
			{"zero credits", "/api/v1/holds", map[string]any{"customer": cus, "credits": 0}, 422, billing.CodeValidation},
			{"negative credits", "/api/v1/holds", map[string]any{"customer": cus, "credits": -5}, 422, billing.CodeValidation},
			{"ttl too long", "/api/v1/holds", map[string]any{"customer": cus, "credits": 1, "ttl_seconds": 86401}, 422, billing.CodeValidation},
			{"negative ttl", "/api/v1/holds", map[string]any{"customer": cus, "credits": 1, "ttl_seconds": -1}, 422, billing.CodeValidation},
			{"no customer", "/api/v1/holds", map[string]any{"credits": 1}, 422, billing.CodeValidation},
			{"unknown customer", "/api/v1/holds", map[string]any{"customer": "nobody", "credits": 1}, 404, billing.CodeCustomerNotFound},
			{"unknown field", "/api/v1/holds", `{"customer": "streamer", "credits": 1, "amount": 1}`, 400, billing.CodeInvalidRequest},
			{"capture unknown feature", "/api/v1/holds/" + hid + "/capture", map[string]any{"feature": "nope", "quantity": 1}, 422, billing.CodeUnknownFeature},
			{"capture zero quantity", "/api/v1/holds/" + hid + "/capture", map[string]any{"feature": "chat.request", "quantity": 0}, 422, billing.CodeInvalidQuantity},
			{"capture malformed", "/api/v1/holds/" + hid + "/capture", `{"feature":`, 400, billing.CodeInvalidRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a.do("POST", tc.path, a.Meter, tc.body).wantError(t, tc.status, tc.typ)
			})
		}
		// A refused capture leaves the hold active and capturable.
		g := a.do("GET", "/api/v1/holds/"+hid, a.Read, nil).want(t, http.StatusOK)
		if g.Body["status"] != billing.HoldActive {
			t.Fatalf("hold after refused captures: %s", g.Raw)
		}
		a.do("POST", "/api/v1/holds/"+hid+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 1}).want(t, http.StatusOK)
	})
	a.checkLedgerInvariant(t, cus)
}

func TestHoldIdempotency(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "hold-idem")
	a.grant(t, cus, "50", billing.SourcePurchase)

	body := map[string]any{"customer": cus, "credits": 10}
	first := a.do("POST", "/api/v1/holds", a.Meter, body, "Idempotency-Key", "h-1").want(t, http.StatusCreated)
	again := a.do("POST", "/api/v1/holds", a.Meter, body, "Idempotency-Key", "h-1").want(t, http.StatusCreated)
	if again.Body["id"] != first.Body["id"] || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %s", again.Raw)
	}
	if b := a.balance(t, cus); num(t, b["held"]) != "10" {
		t.Fatalf("a replayed hold reserved twice: held %v", b["held"])
	}
	a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": cus, "credits": 11}, "Idempotency-Key", "h-1").
		wantError(t, http.StatusConflict, billing.CodeIdempotencyConflict)

	hid := first.Body["id"].(string)
	capture := map[string]any{"feature": "chat.request", "quantity": 2}
	c1 := a.do("POST", "/api/v1/holds/"+hid+"/capture", a.Meter, capture, "Idempotency-Key", "c-1").want(t, http.StatusOK)
	c2 := a.do("POST", "/api/v1/holds/"+hid+"/capture", a.Meter, capture, "Idempotency-Key", "c-1").want(t, http.StatusOK)
	if c2.Header.Get("Idempotent-Replayed") != "true" || obj(t, c2.Body["debit"])["id"] != obj(t, c1.Body["debit"])["id"] {
		t.Fatalf("capture replay: %s", c2.Raw)
	}
	a.do("POST", "/api/v1/holds/"+hid+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 3}, "Idempotency-Key", "c-1").
		wantError(t, http.StatusConflict, billing.CodeIdempotencyConflict)
	if b := a.balance(t, cus); num(t, b["balance"]) != "48" || num(t, b["held"]) != "0" {
		t.Fatalf("balance %v held %v, want 48 and 0", b["balance"], b["held"])
	}
	a.checkLedgerInvariant(t, cus)
}

func TestHoldCaptureBeyondAvailable(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "overrun")
	a.grant(t, cus, "20", billing.SourcePurchase)
	h := a.hold(t, cus, 10, 0)

	// 5 documents = 50 credits: more than held (10) plus the rest available
	// (10). Without an overdraft that is refused, and the hold stays open.
	e := a.do("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", a.Meter,
		map[string]any{"feature": "document.analyze", "quantity": 5}).wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
	if num(t, e["max_capture"]) != "20" {
		t.Fatalf("refused capture's details: %v", e)
	}
	// With an overdraft of 30 it fits: the actual may pass the hold by what
	// is available plus the overdraft.
	a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, map[string]any{"overdraft_limit": 30}).want(t, http.StatusOK)
	r := a.do("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", a.Meter,
		map[string]any{"feature": "document.analyze", "quantity": 5}).want(t, http.StatusOK)
	if num(t, r.Body["credits_charged"]) != "50" || num(t, obj(t, r.Body["debit"])["balance_after"]) != "-30" {
		t.Fatalf("capture: %s", r.Raw)
	}
	b := a.balance(t, cus)
	if num(t, b["balance"]) != "-30" || num(t, b["available"]) != "-30" || num(t, b["held"]) != "0" {
		t.Fatalf("balance: %v", b)
	}
	e = a.usage(cus, "chat.request", "1", "").wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
	if num(t, e["balance"]) != "-30" {
		t.Fatalf("details: %v", e)
	}
	a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": cus, "credits": 1}).
		wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
	a.checkLedgerInvariant(t, cus)

	// A top-up repays the debt first.
	g := a.grant(t, cus, "40", billing.SourcePurchase)
	if num(t, g["balance_after"]) != "10" {
		t.Fatalf("grant: %v", g)
	}
	a.usage(cus, "image.generate", "2", "").want(t, http.StatusCreated)
	if b := a.balance(t, cus); num(t, b["balance"]) != "0" {
		t.Fatalf("balance %v, want 0", b["balance"])
	}
	a.checkLedgerInvariant(t, cus)
}

func TestHoldExpiry(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "slow-stream")
	a.grant(t, cus, "30", billing.SourcePurchase)
	h := a.hold(t, cus, 25, 60)
	hid := h["id"].(string)
	if b := a.balance(t, cus); num(t, b["available"]) != "5" {
		t.Fatalf("available %v, want 5", b["available"])
	}

	a.Clock.Advance(59 * time.Second)
	if b := a.balance(t, cus); num(t, b["available"]) != "5" {
		t.Fatalf("the hold expired early: available %v", b["available"])
	}
	a.Clock.Advance(2 * time.Second)

	e := a.do("POST", "/api/v1/holds/"+hid+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 1}).
		wantError(t, http.StatusConflict, billing.CodeHoldNotActive)
	if e["status"] != billing.HoldExpired {
		t.Fatalf("details: %v", e)
	}
	b := a.balance(t, cus)
	if num(t, b["balance"]) != "30" || num(t, b["held"]) != "0" || num(t, b["available"]) != "30" {
		t.Fatalf("balance after expiry: %v", b)
	}
	g := a.do("GET", "/api/v1/holds/"+hid, a.Read, nil).want(t, http.StatusOK)
	if g.Body["status"] != billing.HoldExpired {
		t.Fatalf("hold: %s", g.Raw)
	}
	// The expired hold is not capturable later either, and releasing it is harmless.
	a.do("POST", "/api/v1/holds/"+hid+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 1}).
		wantError(t, http.StatusConflict, billing.CodeHoldNotActive)
	a.do("POST", "/api/v1/holds/"+hid+"/release", a.Meter, nil).want(t, http.StatusOK)
	a.usage(cus, "document.analyze", "3", "").want(t, http.StatusCreated)
	a.checkLedgerInvariant(t, cus)

	t.Run("a debit frees expired holds before it charges", func(t *testing.T) {
		a.grant(t, cus, "10", billing.SourcePurchase)
		a.hold(t, cus, 10, 30)
		a.usage(cus, "chat.request", "1", "").wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
		a.Clock.Advance(31 * time.Second)
		a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated)
		a.checkLedgerInvariant(t, cus)
	})
}

// TestHoldsCountAgainstSpendCaps checks an open hold counts as spent under
// the customer's caps: captures are always recorded, so holds admitted one by
// one could otherwise pass a cap.
func TestHoldsCountAgainstSpendCaps(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "held-capped")
	a.grant(t, cus, "100", billing.SourcePurchase)
	a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, map[string]any{"daily_cap": 12}).want(t, http.StatusOK)
	h := a.hold(t, cus, 8, 0)
	e := a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": cus, "credits": 8}).
		wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	if e["scope"] != "customer" {
		t.Fatalf("details: %v", e)
	}
	// A debit may not use what the hold reserved under the cap either.
	a.usage(cus, "image.generate", "1", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	a.usage(cus, "chat.request", "4", "").want(t, http.StatusCreated) // 8 held + 4 = 12
	// Capturing less than was held frees the rest of the cap.
	a.do("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", a.Meter, map[string]any{"feature": "image.generate", "quantity": 1}).
		want(t, http.StatusOK) // spent 4 + 5 = 9
	a.usage(cus, "chat.request", "3", "").want(t, http.StatusCreated)
	a.usage(cus, "chat.request", "0.001", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	a.checkLedgerInvariant(t, cus)
}

// A lot that expires while a hold reserves its credits keeps what the
// hold needs until the hold ends. It expired whole: available went to -8
// and the capture left a customer with no overdraft 5 credits in debt.
func TestRegressionExpiryUnderAHold(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "exp-1")
	a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": cus, "credits": 10, "source": "promo",
		"expires_at": a.Clock.Now().Add(3 * time.Second).Format(time.RFC3339Nano)}).want(t, http.StatusCreated)
	h := a.hold(t, cus, 8, 60)
	a.Clock.Advance(5 * time.Second)
	ctx := context.Background()
	if _, err := a.DB.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	b := a.balance(t, cus)
	if num(t, b["balance"]) != "8" || num(t, b["available"]) != "0" || num(t, b["held"]) != "8" {
		t.Fatalf("after the lot's expiry under a hold: %v", b)
	}
	a.do("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", a.Meter, map[string]any{"feature": "chat.request", "quantity": 5}).
		want(t, http.StatusOK)
	// The capture burned 5 of the kept 8; the hold is closed, so the lot's
	// last 3 are written off at once. No debt.
	b = a.balance(t, cus)
	if num(t, b["balance"]) != "0" || num(t, b["available"]) != "0" {
		es, _ := a.ledgerSum(t, cus)
		t.Fatalf("after the capture: %v\n%v", b, es)
	}
	var expired []string
	es, _ := a.ledgerSum(t, cus)
	for _, e := range es {
		if e["type"] == "expiry" {
			expired = append(expired, num(t, e["amount"]))
		}
	}
	if strings.Join(expired, " ") != "-3 -2" {
		t.Fatalf("expiry entries %v, want -3 -2 (newest first: the kept part, then the free part)", expired)
	}
	a.checkLedgerInvariant(t, cus)
}
