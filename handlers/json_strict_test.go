package handlers_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tally-billing/tally/billing"
)

// A JSON body means one thing: a name given twice, or a name that matches a
// field only when case is ignored, is refused (400 invalid_request naming
// the field) and writes nothing. encoding/json (v1) let the last duplicate
// win ("customer" twice debited the second customer) and matched "QUANTITY"
// and "Quantity" to quantity ("quantity":1,"Quantity":50 priced 50).
func TestStrictJSONBodies(t *testing.T) {
	a := newTestAPI(t)
	alice := a.customer(t, "alice")
	bob := a.customer(t, "bob")
	a.grant(t, alice, "100", billing.SourcePurchase)
	a.grant(t, bob, "100", billing.SourcePurchase)

	// unchanged checks that neither customer's ledger moved.
	unchanged := func(t *testing.T) {
		t.Helper()
		for _, cus := range []string{alice, bob} {
			if b := a.balance(t, cus); num(t, b["balance"]) != "100" {
				t.Fatalf("%s balance %v after a refused request, want 100", cus, b["balance"])
			}
			if entries := a.walk(t, "/api/v1/customers/"+cus+"/ledger"); len(entries) != 1 {
				t.Fatalf("%s has %d ledger entries after a refused request, want the grant only", cus, len(entries))
			}
			if us := a.walk(t, "/api/v1/customers/"+cus+"/usage"); len(us) != 0 {
				t.Fatalf("%s has %d debits after a refused request", cus, len(us))
			}
		}
	}

	for _, tc := range []struct {
		name, path, key, body, param string
	}{
		{"usage: customer twice", "/api/v1/usage", a.Meter,
			`{"customer":"alice","feature":"chat.request","quantity":1,"customer":"bob"}`, "customer"},
		{"usage: quantity in upper case", "/api/v1/usage", a.Meter,
			`{"customer":"alice","feature":"chat.request","QUANTITY":1}`, "QUANTITY"},
		{"usage: quantity and Quantity", "/api/v1/usage", a.Meter,
			`{"customer":"alice","feature":"chat.request","quantity":1,"Quantity":50}`, "Quantity"},
		{"usage: feature twice", "/api/v1/usage", a.Meter,
			`{"customer":"alice","feature":"chat.request","feature":"document.analyze","quantity":1}`, "feature"},
		{"usage: a metadata key twice", "/api/v1/usage", a.Meter,
			`{"customer":"alice","feature":"chat.request","quantity":1,"metadata":{"run":"1","run":"2"}}`, "metadata.run"},
		{"batch: customer twice in an event", "/api/v1/usage/batch", a.Meter,
			`{"events":[{"customer":"alice","feature":"chat.request","quantity":1},{"customer":"alice","customer":"bob","feature":"chat.request","quantity":1}]}`, "events[1].customer"},
		{"batch: events twice", "/api/v1/usage/batch", a.Meter,
			`{"events":[{"customer":"alice","feature":"chat.request","quantity":1}],"events":[]}`, "events"},
		{"hold: credits twice", "/api/v1/holds", a.Meter,
			`{"customer":"alice","credits":1,"credits":90}`, "credits"},
		{"hold: Customer", "/api/v1/holds", a.Meter,
			`{"Customer":"alice","credits":1}`, "Customer"},
		{"grant: customer twice", "/api/v1/grants", a.Admin,
			`{"customer":"alice","credits":5,"source":"promo","reason":"welcome","customer":"bob"}`, "customer"},
		{"adjustment: Credits", "/api/v1/adjustments", a.Admin,
			`{"customer":"alice","credits":-1,"Credits":-90,"reason":"fix"}`, "Credits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := a.do("POST", tc.path, tc.key, tc.body).wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
			msg, _ := e["message"].(string)
			if e["param"] != tc.param || !strings.Contains(msg, fmt.Sprintf("%q", tc.param)) {
				t.Fatalf("error %v: want param %q named in the message", e, tc.param)
			}
			unchanged(t)
		})
	}

	t.Run("the same bodies written once are taken", func(t *testing.T) {
		a.do("POST", "/api/v1/usage", a.Meter, `{"customer":"alice","feature":"chat.request","quantity":1}`).want(t, http.StatusCreated)
		if b := a.balance(t, alice); num(t, b["balance"]) != "99" {
			t.Fatalf("alice balance %v, want 99", b["balance"])
		}
	})
}

// A value of the wrong type says what the field must be, in words a person
// reads: not "must be a number, not number 1.5".
func TestJSONTypeErrorsSayWhatTheFieldMustBe(t *testing.T) {
	a := newTestAPI(t)
	a.customer(t, "alice")
	for _, tc := range []struct {
		name, path, key, body, param, message string
	}{
		{"fractional ttl_seconds", "/api/v1/holds", a.Meter, `{"customer":"alice","credits":1,"ttl_seconds":1.5}`,
			"ttl_seconds", "ttl_seconds must be a whole number, not 1.5."},
		{"ttl_seconds as a string", "/api/v1/holds", a.Meter, `{"customer":"alice","credits":1,"ttl_seconds":"60"}`,
			"ttl_seconds", `ttl_seconds must be a whole number, not "60".`},
		{"customer as a number", "/api/v1/usage", a.Meter, `{"customer":42,"feature":"chat.request","quantity":1}`,
			"customer", "customer must be a string, not 42."},
		{"metadata value as a number", "/api/v1/usage", a.Meter, `{"customer":"alice","feature":"chat.request","quantity":1,"metadata":{"run":7}}`,
			"metadata.run", "metadata.run must be a string, not 7."},
		{"pack price beyond int64", "/api/v1/price-books", a.Admin,
			`{"currency":"usd","features":[{"key":"chat.request","credits":1}],"packs":[{"id":"p","credits":10,"price":{"amount":9223372036854775808}}]}`,
			"packs[0].price.amount", "packs[0].price.amount is out of range: 9223372036854775808."},
		{"unknown field in a feature", "/api/v1/price-books", a.Admin,
			`{"currency":"usd","features":[{"key":"chat.request","credits":1,"colour":"red"}]}`,
			"features[0].colour", `Unknown field "features[0].colour".`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := a.do("POST", tc.path, tc.key, tc.body).wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
			if e["param"] != tc.param || e["message"] != tc.message {
				t.Fatalf("error %v, want param %q and message %q", e, tc.param, tc.message)
			}
		})
	}

	t.Run("a pack price of MaxInt64 is too large, not 'not more than zero'", func(t *testing.T) {
		e := a.do("POST", "/api/v1/price-books", a.Admin,
			`{"currency":"usd","features":[{"key":"chat.request","credits":1}],"packs":[{"id":"p","credits":10,"price":{"amount":9223372036854775807}}]}`).
			wantError(t, http.StatusUnprocessableEntity, billing.CodeValidation)
		if msg, _ := e["message"].(string); !strings.Contains(msg, "price must be at most 10,000,000,000") {
			t.Fatalf("message %q", msg)
		}
	})
}
