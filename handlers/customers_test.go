package handlers_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

func TestCreateCustomer(t *testing.T) {
	a := newTestAPI(t)

	first := a.do("POST", "/api/v1/customers", a.Meter, map[string]any{
		"external_id": "user-1", "email": "ana@example.com", "name": "Ana",
	}).want(t, http.StatusCreated)
	id, _ := first.Body["id"].(string)
	if len(id) < 5 || id[:4] != "cus_" {
		t.Fatalf("id %q is not a cus_ id", id)
	}
	if first.Body["object"] != "customer" || first.Body["external_id"] != "user-1" ||
		first.Body["email"] != "ana@example.com" || first.Body["name"] != "Ana" {
		t.Fatalf("unexpected customer: %s", first.Raw)
	}

	t.Run("existing external_id answers 200 with the same customer", func(t *testing.T) {
		again := a.do("POST", "/api/v1/customers", a.Meter, map[string]any{"external_id": "user-1"}).want(t, http.StatusOK)
		if again.Body["id"] != id {
			t.Fatalf("id %v, want %s", again.Body["id"], id)
		}
		if again.Body["email"] != "ana@example.com" {
			t.Fatalf("the existing customer changed: %s", again.Raw)
		}
	})

	for _, tc := range []struct {
		name   string
		body   any
		status int
		typ    string
		param  string
	}{
		{"missing external_id", map[string]any{"email": "a@example.com"}, 422, billing.CodeValidation, "external_id"},
		{"blank external_id", map[string]any{"external_id": "   "}, 422, billing.CodeValidation, "external_id"},
		{"external_id with cus_ prefix", map[string]any{"external_id": "cus_abc"}, 422, billing.CodeValidation, "external_id"},
		{"bad email", map[string]any{"external_id": "user-2", "email": "not-an-email"}, 422, billing.CodeValidation, "email"},
		{"malformed JSON", `{"external_id": "user-2"`, 400, billing.CodeInvalidRequest, ""},
		{"syntax error", `{"external_id": user-2}`, 400, billing.CodeInvalidRequest, ""},
		{"unknown field", `{"external_id": "user-2", "plan": "pro"}`, 400, billing.CodeInvalidRequest, "plan"},
		{"wrong type", `{"external_id": 42}`, 400, billing.CodeInvalidRequest, "external_id"},
		{"trailing data", `{"external_id": "user-2"} {}`, 400, billing.CodeInvalidRequest, ""},
		{"empty body", ``, 400, billing.CodeInvalidRequest, ""},
		{"array body", `[]`, 400, billing.CodeInvalidRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := a.do("POST", "/api/v1/customers", a.Meter, tc.body).wantError(t, tc.status, tc.typ)
			if tc.param != "" && e["param"] != tc.param {
				t.Fatalf("param %v, want %s", e["param"], tc.param)
			}
		})
	}
	// None of the refused requests created a customer.
	list := a.walk(t, "/api/v1/customers")
	if len(list) != 1 {
		t.Fatalf("%d customers, want 1", len(list))
	}
}

func TestGetCustomer(t *testing.T) {
	a := newTestAPI(t)
	id := a.customer(t, "ext-42")

	for _, ref := range []string{id, "ext-42"} {
		t.Run("by "+ref, func(t *testing.T) {
			r := a.do("GET", "/api/v1/customers/"+ref, a.Read, nil).want(t, http.StatusOK)
			if r.Body["id"] != id || r.Body["external_id"] != "ext-42" || r.Body["object"] != "customer" {
				t.Fatalf("unexpected customer: %s", r.Raw)
			}
			lim := obj(t, r.Body["limits"])
			if lim["daily_cap"] != nil || lim["monthly_cap"] != nil {
				t.Fatalf("a new customer has caps: %s", r.Raw)
			}
		})
	}
	for _, ref := range []string{"nobody", "cus_doesnotexist"} {
		t.Run("unknown "+ref, func(t *testing.T) {
			a.do("GET", "/api/v1/customers/"+ref, a.Read, nil).wantError(t, http.StatusNotFound, billing.CodeCustomerNotFound)
		})
	}
	t.Run("every per-customer read answers customer_not_found", func(t *testing.T) {
		for _, p := range []string{"/balance", "/usage", "/ledger"} {
			a.do("GET", "/api/v1/customers/nobody"+p, a.Read, nil).wantError(t, http.StatusNotFound, billing.CodeCustomerNotFound)
		}
		a.do("PUT", "/api/v1/customers/nobody/limits", a.Admin, map[string]any{}).wantError(t, http.StatusNotFound, billing.CodeCustomerNotFound)
	})
}

func TestListCustomers(t *testing.T) {
	a := newTestAPI(t)
	want := map[string]bool{}
	for i := range 7 {
		want[a.customer(t, fmt.Sprintf("list-%d", i))] = true
	}

	first := a.do("GET", "/api/v1/customers?limit=3", a.Read, nil).want(t, http.StatusOK)
	if n := len(arr(t, first.Body["data"])); n != 3 || first.Body["has_more"] != true || first.Body["next_cursor"] == nil {
		t.Fatalf("first page: %d items, has_more %v: %s", n, first.Body["has_more"], first.Raw)
	}

	got := a.walk(t, "/api/v1/customers?limit=3")
	if len(got) != len(want) {
		t.Fatalf("walked %d customers, want %d", len(got), len(want))
	}
	seen := map[string]bool{}
	for _, c := range got {
		id := c["id"].(string)
		if seen[id] || !want[id] {
			t.Fatalf("customer %s duplicated or unexpected", id)
		}
		seen[id] = true
		if c["object"] != "customer" {
			t.Fatalf("object %v", c["object"])
		}
	}

	t.Run("default page holds all", func(t *testing.T) {
		r := a.do("GET", "/api/v1/customers", a.Read, nil).want(t, http.StatusOK)
		if n := len(arr(t, r.Body["data"])); n != 7 || r.Body["has_more"] != false {
			t.Fatalf("%d items, has_more %v", n, r.Body["has_more"])
		}
		if _, ok := r.Body["next_cursor"]; ok {
			t.Fatalf("next_cursor present on the last page: %s", r.Raw)
		}
	})
	for _, bad := range []string{"0", "101", "-1", "x"} {
		t.Run("limit "+bad, func(t *testing.T) {
			e := a.do("GET", "/api/v1/customers?limit="+bad, a.Read, nil).wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
			if e["param"] != "limit" {
				t.Fatalf("param %v", e["param"])
			}
		})
	}
}

func TestPutLimits(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "capped")
	a.grant(t, cus, "1000", billing.SourcePurchase)

	t.Run("daily cap refuses with 429 and writes nothing", func(t *testing.T) {
		r := a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, map[string]any{"daily_cap": 12}).want(t, http.StatusOK)
		if num(t, obj(t, r.Body["limits"])["daily_cap"]) != "12" {
			t.Fatalf("limits not stored: %s", r.Raw)
		}
		a.usage(cus, "document.analyze", "1", "").want(t, http.StatusCreated) // 10 of 12
		before := a.balance(t, cus)["balance"]
		entries, _ := a.ledgerSum(t, cus)

		e := a.usage(cus, "image.generate", "1", "cap-1").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
		if e["limit_type"] != "daily" || e["scope"] != "customer" || num(t, e["limit"]) != "12" ||
			num(t, e["spent"]) != "10" || num(t, e["required"]) != "5" {
			t.Fatalf("details: %v", e)
		}
		if after := a.balance(t, cus)["balance"]; after != before {
			t.Fatalf("balance changed from %v to %v", before, after)
		}
		if after, _ := a.ledgerSum(t, cus); len(after) != len(entries) {
			t.Fatalf("ledger grew from %d to %d entries", len(entries), len(after))
		}
		// Within the cap still works; the refused key is free to use.
		a.usage(cus, "chat.request", "2", "cap-1").want(t, http.StatusCreated)
		// The next day the cap starts again.
		a.Clock.Advance(24 * time.Hour)
		a.usage(cus, "image.generate", "1", "").want(t, http.StatusCreated)
	})

	t.Run("monthly cap", func(t *testing.T) {
		a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, map[string]any{"monthly_cap": 30}).want(t, http.StatusOK)
		// 10 + 2 + 5 = 17 spent this month so far.
		a.usage(cus, "document.analyze", "1", "").want(t, http.StatusCreated) // 27
		e := a.usage(cus, "image.generate", "1", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
		if e["limit_type"] != "monthly" || num(t, e["spent"]) != "27" {
			t.Fatalf("details: %v", e)
		}
		a.usage(cus, "chat.request", "3", "").want(t, http.StatusCreated) // exactly 30
	})

	t.Run("invalid limits", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body any
		}{
			{"negative daily", map[string]any{"daily_cap": -1}},
			{"negative monthly", map[string]any{"monthly_cap": -5}},
			{"daily above monthly", map[string]any{"daily_cap": 50, "monthly_cap": 40}},
			{"negative overdraft", map[string]any{"overdraft_limit": -1}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, tc.body).wantError(t, http.StatusUnprocessableEntity, billing.CodeValidation)
			})
		}
		a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, `{"daily_cap": 1.2345}`).wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
		a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, `{"weekly_cap": 5}`).wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
		// A refused update left the monthly cap in place.
		r := a.do("GET", "/api/v1/customers/"+cus, a.Read, nil).want(t, http.StatusOK)
		if num(t, obj(t, r.Body["limits"])["monthly_cap"]) != "30" {
			t.Fatalf("limits changed by a refused update: %s", r.Raw)
		}
	})

	t.Run("null removes the caps", func(t *testing.T) {
		r := a.do("PUT", "/api/v1/customers/capped/limits", a.Admin, `{"daily_cap": null, "monthly_cap": null}`).want(t, http.StatusOK)
		lim := obj(t, r.Body["limits"])
		if lim["daily_cap"] != nil || lim["monthly_cap"] != nil {
			t.Fatalf("caps not removed: %s", r.Raw)
		}
		a.usage(cus, "document.analyze", "5", "").want(t, http.StatusCreated)
	})

	t.Run("needs an admin key", func(t *testing.T) {
		a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Meter, map[string]any{}).wantError(t, http.StatusForbidden, billing.CodeForbidden)
	})
}
