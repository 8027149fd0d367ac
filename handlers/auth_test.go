package handlers_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/tally-billing/tally/billing"
)

func TestAuthentication(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "auth-user")

	for _, tc := range []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"not bearer", "Basic dXNlcjpwYXNz"},
		{"empty bearer", "Bearer "},
		{"no tsk_ prefix", "Bearer abc"},
		{"unknown key", "Bearer tsk_thiskeydoesnotexist0000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			a.do("GET", "/api/v1/customers/"+cus, "", nil, hdr...).wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
			a.do("POST", "/api/v1/usage", "", map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1}, hdr...).
				wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
		})
	}

	t.Run("revoked key", func(t *testing.T) {
		ctx := context.Background()
		k, secret, err := a.DB.CreateAPIKey(ctx, "to revoke", billing.ScopeRead, billing.Limits{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		a.do("GET", "/api/v1/customers/"+cus, secret, nil).want(t, http.StatusOK) // now cached
		if _, err := a.DB.RevokeAPIKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		// Revoking through the same handle clears the key cache: no 2 s grace.
		a.do("GET", "/api/v1/customers/"+cus, secret, nil).wantError(t, http.StatusUnauthorized, billing.CodeUnauthorized)
	})

	t.Run("scopes", func(t *testing.T) {
		usage := map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1}
		grant := map[string]any{"customer": cus, "credits": 10, "source": "promo"}
		for _, tc := range []struct {
			name         string
			method, path string
			key          string
			body         any
		}{
			{"read key on POST /usage", "POST", "/api/v1/usage", a.Read, usage},
			{"read key on POST /usage/batch", "POST", "/api/v1/usage/batch", a.Read, map[string]any{"events": []any{usage}}},
			{"read key on POST /customers", "POST", "/api/v1/customers", a.Read, map[string]any{"external_id": "x"}},
			{"read key on POST /holds", "POST", "/api/v1/holds", a.Read, map[string]any{"customer": cus, "credits": 1}},
			{"metering key on POST /grants", "POST", "/api/v1/grants", a.Meter, grant},
			{"metering key on POST /price-books", "POST", "/api/v1/price-books", a.Meter, testPriceBook()},
			{"metering key on PUT limits", "PUT", "/api/v1/customers/" + cus + "/limits", a.Meter, map[string]any{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a.do(tc.method, tc.path, tc.key, tc.body).wantError(t, http.StatusForbidden, billing.CodeForbidden)
			})
		}
		// Nothing was written by the refused requests.
		if es, _ := a.ledgerSum(t, cus); len(es) != 0 {
			t.Fatalf("refused requests wrote %d entries", len(es))
		}
		// Higher scopes include lower ones.
		a.do("GET", "/api/v1/customers/"+cus, a.Admin, nil).want(t, http.StatusOK)
		a.do("GET", "/api/v1/customers/"+cus, a.Meter, nil).want(t, http.StatusOK)
		a.do("POST", "/api/v1/grants", a.Admin, grant).want(t, http.StatusCreated)
		a.do("POST", "/api/v1/usage", a.Admin, usage).want(t, http.StatusCreated)
	})
}

func TestRateLimit(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	cus := a.customer(t, "rate-user")
	if _, err := a.DB.UpdateAPIKeyLimits(ctx, a.ReadKey.ID, billing.Limits{}, 2); err != nil {
		t.Fatal(err)
	}

	limited := 0
	for i := 0; i < 20; i++ {
		r := a.do("GET", "/api/v1/customers/"+cus, a.Read, nil)
		if r.Status == http.StatusOK {
			continue
		}
		e := r.wantError(t, http.StatusTooManyRequests, billing.CodeRateLimited)
		limited++
		ra := r.Header.Get("Retry-After")
		secs, err := strconv.Atoi(ra)
		if err != nil || secs < 1 {
			t.Fatalf("Retry-After %q is not a positive number of seconds", ra)
		}
		if num(t, e["retry_after"]) != ra {
			t.Fatalf("retry_after %v differs from the Retry-After header %s", e["retry_after"], ra)
		}
	}
	// 20 requests in far less than a second against a burst of 2: at most
	// 2 + (2/s * elapsed) pass.
	if limited < 10 {
		t.Fatalf("only %d of 20 requests were rate limited", limited)
	}

	t.Run("keys without a limit never are", func(t *testing.T) {
		for i := 0; i < 100; i++ {
			a.do("GET", "/api/v1/customers/"+cus, a.Meter, nil).want(t, http.StatusOK)
		}
	})
	t.Run("removing the limit lifts it", func(t *testing.T) {
		if _, err := a.DB.UpdateAPIKeyLimits(ctx, a.ReadKey.ID, billing.Limits{}, 0); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			a.do("GET", "/api/v1/customers/"+cus, a.Read, nil).want(t, http.StatusOK)
		}
	})
}

func TestAPIKeySpendCaps(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	cus := a.customer(t, "key-capped")
	a.grant(t, cus, "1000", billing.SourcePurchase)
	daily := billing.CreditsOf(7)
	if _, err := a.DB.UpdateAPIKeyLimits(ctx, a.MeterKey.ID, billing.Limits{DailyCap: &daily}, 0); err != nil {
		t.Fatal(err)
	}
	a.usage(cus, "image.generate", "1", "").want(t, http.StatusCreated)
	before := a.balance(t, cus)["balance"]
	e := a.usage(cus, "chat.request", "3", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	if e["scope"] != "API key" || e["limit_type"] != "daily" || num(t, e["spent"]) != "5" || num(t, e["required"]) != "3" {
		t.Fatalf("details: %v", e)
	}
	if after := a.balance(t, cus)["balance"]; after != before {
		t.Fatalf("balance changed from %v to %v", before, after)
	}
	// The cap is the key's, not the customer's: another key may still spend.
	a.do("POST", "/api/v1/usage", a.Admin, map[string]any{"customer": cus, "feature": "chat.request", "quantity": 3}).want(t, http.StatusCreated)
	// The quote through the capped key says why.
	q := a.do("GET", "/api/v1/quote?customer="+cus+"&feature=chat.request&quantity=3", a.Meter, nil).want(t, http.StatusOK)
	if q.Body["affordable"] != false || q.Body["reason"] != billing.CodeSpendLimitExceeded {
		t.Fatalf("quote: %s", q.Raw)
	}

	t.Run("monthly", func(t *testing.T) {
		monthly := billing.CreditsOf(12)
		if _, err := a.DB.UpdateAPIKeyLimits(ctx, a.MeterKey.ID, billing.Limits{MonthlyCap: &monthly}, 0); err != nil {
			t.Fatal(err)
		}
		a.usage(cus, "image.generate", "1", "").want(t, http.StatusCreated) // 10 of 12
		e := a.usage(cus, "chat.request", "3", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
		if e["scope"] != "API key" || e["limit_type"] != "monthly" {
			t.Fatalf("details: %v", e)
		}
	})
	t.Run("holds count against the key too", func(t *testing.T) {
		a.do("POST", "/api/v1/holds", a.Meter, map[string]any{"customer": cus, "credits": 5}).
			wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
	})
}
