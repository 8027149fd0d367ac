package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
)

// A feature priced per dimension over the API: the usage, the capture and
// the quote take quantities, answer with the breakdown, and the wrong form
// is a 422 invalid_quantity naming the parameter.
func TestUsagePerDimension(t *testing.T) {
	a := newTestAPI(t)
	pb := testPriceBook()
	pb.Features = append(pb.Features, billing.Feature{Key: "gpt-4o", Name: "GPT-4o", Unit: "call", Dimensions: []billing.Dimension{
		{Key: "input_tokens", Unit: "input token", Credits: 2500, UnitSize: 1000},
		{Key: "output_tokens", Unit: "output token", Credits: 10_000, UnitSize: 1000},
	}})
	if _, _, err := a.DB.PublishPriceBook(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
	cus := a.customer(t, "dims")
	a.grant(t, cus, "100", billing.SourcePurchase)

	q := a.do("GET", "/api/v1/quote?customer=dims&feature=gpt-4o&quantities[input_tokens]=1200&quantities[output_tokens]=350", a.Read, nil).want(t, http.StatusOK)
	if num(t, q.Body["credits"]) != "6.5" || len(arr(t, q.Body["breakdown"])) != 2 || q.Body["affordable"] != true {
		t.Fatalf("quote %s", q.Raw)
	}
	r := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{
		"customer": "dims", "feature": "gpt-4o", "quantities": map[string]any{"input_tokens": 1200, "output_tokens": 350},
	}, "Idempotency-Key", "dim-1").want(t, http.StatusCreated)
	lines := arr(t, r.Body["breakdown"])
	if num(t, r.Body["credits_charged"]) != "6.5" || len(lines) != 2 {
		t.Fatalf("debit %s", r.Raw)
	}
	if l := obj(t, lines[1]); l["dimension"] != "output_tokens" || num(t, l["quantity"]) != "350" || num(t, l["credits"]) != "3.5" {
		t.Fatalf("breakdown line %v", l)
	}
	if again := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{
		"customer": "dims", "feature": "gpt-4o", "quantities": map[string]any{"output_tokens": 350, "input_tokens": 1200},
	}, "Idempotency-Key", "dim-1").want(t, http.StatusCreated); again.Header.Get("Idempotent-Replayed") != "true" || string(again.Raw) != string(r.Raw) {
		t.Fatalf("replay %s", again.Raw)
	}

	for name, body := range map[string]map[string]any{
		"quantity for a feature priced per dimension": {"customer": "dims", "feature": "gpt-4o", "quantity": 3},
		"unknown dimension":                           {"customer": "dims", "feature": "gpt-4o", "quantities": map[string]any{"images": 1}},
		"quantities for a plain feature":              {"customer": "dims", "feature": "chat.request", "quantities": map[string]any{"input_tokens": 1}},
		"both":                                        {"customer": "dims", "feature": "gpt-4o", "quantity": 1, "quantities": map[string]any{"input_tokens": 1}},
	} {
		e := a.do("POST", "/api/v1/usage", a.Meter, body).wantError(t, http.StatusUnprocessableEntity, billing.CodeInvalidQuantity)
		if e["param"] == nil {
			t.Errorf("%s: no param in %v", name, e)
		}
	}

	h := a.hold(t, cus, 10, 0)
	c := a.do("POST", "/api/v1/holds/"+h["id"].(string)+"/capture", a.Meter, map[string]any{
		"feature": "gpt-4o", "quantities": map[string]any{"input_tokens": 2000, "output_tokens": 500},
	}).want(t, http.StatusOK)
	if num(t, c.Body["credits_charged"]) != "10" || len(arr(t, obj(t, c.Body["debit"])["breakdown"])) != 2 {
		t.Fatalf("capture %s", c.Raw)
	}
	// The ledger shows the breakdown on the entry.
	entries := a.walk(t, "/api/v1/customers/"+cus+"/ledger?limit=100")
	var seen int
	for _, e := range entries {
		if e["type"] == "debit" && len(arr(t, e["breakdown"])) == 2 {
			seen++
		}
	}
	if seen != 2 {
		t.Errorf("%d entries with a breakdown, want 2", seen)
	}
	a.checkLedgerInvariant(t, cus)

	// The customer reads the breakdown in the portal's usage and activity pages.
	v := newPortalVisitor(t, a)
	v.signIn("dims")
	for _, path := range []string{"/portal/usage", "/portal/ledger"} {
		page := v.get(path).want(t, http.StatusOK)
		if !strings.Contains(string(page.Raw), "1,200 input tokens · 350 output tokens") {
			t.Errorf("%s does not show the breakdown", path)
		}
	}
}
