package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers"
)

func TestCreateUsage(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "meter-me")
	a.grant(t, cus, "100", billing.SourcePurchase)

	r := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{
		"customer": "meter-me", "feature": "image.generate", "quantity": 2,
	}, "Idempotency-Key", "use-1").want(t, http.StatusCreated)
	if got, want := keysOf(r.Body), "balance_after,created_at,credits_charged,customer,feature,id,object,price_version,quantity"; got != want {
		t.Fatalf("fields %s, want %s", got, want)
	}
	if r.Body["object"] != "debit" || r.Body["customer"] != cus || r.Body["feature"] != "image.generate" ||
		num(t, r.Body["quantity"]) != "2" || num(t, r.Body["credits_charged"]) != "10" ||
		num(t, r.Body["balance_after"]) != "90" || num(t, r.Body["price_version"]) != "1" {
		t.Fatalf("unexpected debit: %s", r.Raw)
	}
	if !strings.HasPrefix(r.Body["id"].(string), "ent_") {
		t.Fatalf("id %v", r.Body["id"])
	}
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("a first request is marked as a replay")
	}
	id := r.Body["id"]

	t.Run("replay by header", func(t *testing.T) {
		again := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{
			"customer": "meter-me", "feature": "image.generate", "quantity": 2,
		}, "Idempotency-Key", "use-1").want(t, http.StatusCreated)
		if again.Body["id"] != id || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: id %v header %q", again.Body["id"], again.Header.Get("Idempotent-Replayed"))
		}
		if string(again.Raw) != string(r.Raw) {
			t.Fatalf("replay answered\n%s\nnot\n%s", again.Raw, r.Raw)
		}
	})
	t.Run("replay by body key, naming the customer by id", func(t *testing.T) {
		again := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{
			"customer": cus, "feature": "image.generate", "quantity": 2, "idempotency_key": "use-1",
		}).want(t, http.StatusCreated)
		if again.Body["id"] != id || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: id %v header %q", again.Body["id"], again.Header.Get("Idempotent-Replayed"))
		}
	})
	t.Run("body key first, header replay", func(t *testing.T) {
		first := a.usage(cus, "chat.request", "1", "use-2").want(t, http.StatusCreated)
		again := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1},
			"Idempotency-Key", "use-2").want(t, http.StatusCreated)
		if again.Body["id"] != first.Body["id"] || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %s", again.Raw)
		}
	})
	t.Run("same key, different body", func(t *testing.T) {
		before := a.balance(t, cus)["balance"]
		for _, body := range []map[string]any{
			{"customer": cus, "feature": "image.generate", "quantity": 3},
			{"customer": cus, "feature": "chat.request", "quantity": 2},
			{"customer": cus, "feature": "image.generate", "quantity": 2, "metadata": map[string]string{"user": "x"}},
		} {
			e := a.do("POST", "/api/v1/usage", a.Meter, body, "Idempotency-Key", "use-1").
				wantError(t, http.StatusConflict, billing.CodeIdempotencyConflict)
			if e["idempotency_key"] != "use-1" {
				t.Fatalf("details: %v", e)
			}
		}
		if after := a.balance(t, cus)["balance"]; after != before {
			t.Fatalf("balance changed from %v to %v", before, after)
		}
	})
	t.Run("a key used by a grant is a conflict", func(t *testing.T) {
		a.do("POST", "/api/v1/grants", a.Admin, map[string]any{"customer": cus, "credits": 1, "source": "promo"},
			"Idempotency-Key", "shared-key").want(t, http.StatusCreated)
		a.do("POST", "/api/v1/usage", a.Meter, map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1},
			"Idempotency-Key", "shared-key").wantError(t, http.StatusConflict, billing.CodeIdempotencyConflict)
	})
	t.Run("header and body keys differ", func(t *testing.T) {
		e := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{
			"customer": cus, "feature": "chat.request", "quantity": 1, "idempotency_key": "body-key",
		}, "Idempotency-Key", "header-key").wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
		if e["param"] != "idempotency_key" {
			t.Fatalf("param %v", e["param"])
		}
	})
	t.Run("header and body keys agree", func(t *testing.T) {
		a.do("POST", "/api/v1/usage", a.Meter, map[string]any{
			"customer": cus, "feature": "chat.request", "quantity": 1, "idempotency_key": "both-key",
		}, "Idempotency-Key", "both-key").want(t, http.StatusCreated)
	})
	t.Run("metadata is returned and stored", func(t *testing.T) {
		r := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{
			"customer": cus, "feature": "chat.request", "quantity": 1, "metadata": map[string]string{"user": "maria"},
		}).want(t, http.StatusCreated)
		if obj(t, r.Body["metadata"])["user"] != "maria" {
			t.Fatalf("metadata: %s", r.Raw)
		}
	})
	a.checkLedgerInvariant(t, cus)
}

func TestCreateUsageErrors(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "errs")
	a.grant(t, cus, "20", billing.SourcePurchase)

	for _, tc := range []struct {
		name   string
		body   any
		status int
		typ    string
		param  string
	}{
		{"unknown customer", map[string]any{"customer": "nobody", "feature": "chat.request", "quantity": 1}, 404, billing.CodeCustomerNotFound, "customer"},
		{"unknown cus_ id", map[string]any{"customer": "cus_nobody", "feature": "chat.request", "quantity": 1}, 404, billing.CodeCustomerNotFound, "customer"},
		{"missing customer", map[string]any{"feature": "chat.request", "quantity": 1}, 422, billing.CodeValidation, "customer"},
		{"unknown feature", map[string]any{"customer": cus, "feature": "video.render", "quantity": 1}, 422, billing.CodeUnknownFeature, "feature"},
		{"missing feature", map[string]any{"customer": cus, "quantity": 1}, 422, billing.CodeUnknownFeature, "feature"},
		{"zero quantity", map[string]any{"customer": cus, "feature": "chat.request", "quantity": 0}, 422, billing.CodeInvalidQuantity, "quantity"},
		{"negative quantity", map[string]any{"customer": cus, "feature": "chat.request", "quantity": -1}, 422, billing.CodeInvalidQuantity, "quantity"},
		{"missing quantity", map[string]any{"customer": cus, "feature": "chat.request"}, 422, billing.CodeInvalidQuantity, "quantity"},
		{"quantity with 4 decimals", `{"customer": "errs", "feature": "chat.request", "quantity": 1.2345}`, 400, billing.CodeInvalidRequest, ""},
		{"quantity as a string", `{"customer": "errs", "feature": "chat.request", "quantity": "1"}`, 400, billing.CodeInvalidRequest, ""},
		{"quantity null", `{"customer": "errs", "feature": "chat.request", "quantity": null}`, 422, billing.CodeInvalidQuantity, "quantity"},
		{"malformed JSON", `{"customer": "errs", "feature": "chat.request", "quantity": 1`, 400, billing.CodeInvalidRequest, ""},
		{"unknown field", `{"customer": "errs", "feature": "chat.request", "quantity": 1, "qty": 2}`, 400, billing.CodeInvalidRequest, "qty"},
		{"idempotency key with a space", map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1, "idempotency_key": "a b"}, 400, billing.CodeInvalidRequest, "idempotency_key"},
		{"idempotency key too long", map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1, "idempotency_key": strings.Repeat("k", 256)}, 400, billing.CodeInvalidRequest, "idempotency_key"},
		{"too much metadata", map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1, "metadata": manyTags(21)}, 422, billing.CodeValidation, "metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := a.do("POST", "/api/v1/usage", a.Meter, tc.body).wantError(t, tc.status, tc.typ)
			if tc.param != "" && e["param"] != tc.param {
				t.Fatalf("param %v, want %s", e["param"], tc.param)
			}
		})
	}

	t.Run("body over 1 MiB", func(t *testing.T) {
		big := `{"customer": "errs", "feature": "chat.request", "quantity": 1, "metadata": {"x": "` + strings.Repeat("a", handlers.MaxBody) + `"}}`
		a.do("POST", "/api/v1/usage", a.Meter, big).wantError(t, http.StatusRequestEntityTooLarge, billing.CodeRequestTooLarge)
	})
	t.Run("chunked body over 1 MiB", func(t *testing.T) {
		// No Content-Length: the limit is met while reading.
		big := `{"customer": "errs", "feature": "chat.request", "quantity": 1, "metadata": {"x": "` + strings.Repeat("a", handlers.MaxBody) + `"}}`
		a.do("POST", "/api/v1/usage", a.Meter, io.MultiReader(strings.NewReader(big))).
			wantError(t, http.StatusRequestEntityTooLarge, billing.CodeRequestTooLarge)
	})
	t.Run("nothing was written", func(t *testing.T) {
		es, _ := a.ledgerSum(t, cus)
		if len(es) != 1 {
			t.Fatalf("%d entries, want only the grant", len(es))
		}
	})
}

func manyTags(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestInsufficientCredits(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "poor")
	a.grant(t, cus, "7", billing.SourcePurchase)
	a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated) // 6 left

	entriesBefore, _ := a.ledgerSum(t, cus)
	balBefore := a.balance(t, cus)

	e := a.usage(cus, "document.analyze", "1", "poor-1").wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
	if num(t, e["balance"]) != "6" || num(t, e["required"]) != "10" || num(t, e["available"]) != "6" || num(t, e["held"]) != "0" {
		t.Fatalf("details: %v", e)
	}
	balAfter := a.balance(t, cus)
	if balAfter["balance"] != balBefore["balance"] || balAfter["available"] != balBefore["available"] {
		t.Fatalf("balance changed: %v -> %v", balBefore["balance"], balAfter["balance"])
	}
	entriesAfter, _ := a.ledgerSum(t, cus)
	if len(entriesAfter) != len(entriesBefore) {
		t.Fatalf("ledger grew from %d to %d entries", len(entriesBefore), len(entriesAfter))
	}
	usage := a.walk(t, "/api/v1/customers/"+cus+"/usage")
	if len(usage) != 1 {
		t.Fatalf("%d debits listed, want 1", len(usage))
	}

	// The refused key was not spent: after a top-up the same request succeeds.
	a.grant(t, cus, "10", billing.SourcePurchase)
	r := a.usage(cus, "document.analyze", "1", "poor-1").want(t, http.StatusCreated)
	if r.Header.Get("Idempotent-Replayed") != "" || num(t, r.Body["balance_after"]) != "6" {
		t.Fatalf("after top-up: %s (replayed %q)", r.Raw, r.Header.Get("Idempotent-Replayed"))
	}
	a.checkLedgerInvariant(t, cus)
}

func TestUsageTokenRounding(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "tokens")
	a.grant(t, cus, "100", billing.SourcePurchase)
	for _, tc := range []struct{ qty, charge string }{
		{"1234", "3.085"},
		{"1000", "2.5"},
		{"1", "0.002"},       // 2.5 millicredits, rounded down
		{"0.5", "0.001"},     // 1.25 millicredits, rounded down
		{"0.001", "0"},       // below a millicredit: free
		{"999.999", "2.499"}, // 2499.9975 millicredits, rounded down
	} {
		t.Run(tc.qty, func(t *testing.T) {
			r := a.usage(cus, "gpt-4o.tokens", tc.qty, "").want(t, http.StatusCreated)
			if num(t, r.Body["credits_charged"]) != tc.charge || num(t, r.Body["quantity"]) != tc.qty {
				t.Fatalf("charged %v for %v, want %s for %s", r.Body["credits_charged"], r.Body["quantity"], tc.charge, tc.qty)
			}
		})
	}
	a.checkLedgerInvariant(t, cus)
}

func TestUsageBatch(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "batcher")
	a.grant(t, cus, "12", billing.SourcePurchase)

	r := a.do("POST", "/api/v1/usage/batch", a.Meter, map[string]any{"events": []any{
		map[string]any{"customer": cus, "feature": "image.generate", "quantity": 1, "idempotency_key": "b-1"},   // 201, 7 left
		map[string]any{"customer": cus, "feature": "document.analyze", "quantity": 1, "idempotency_key": "b-2"}, // 402
		map[string]any{"customer": cus, "feature": "video.render", "quantity": 1},                               // 422
		map[string]any{"customer": "nobody", "feature": "chat.request", "quantity": 1},                          // 404
		map[string]any{"customer": cus, "feature": "chat.request", "quantity": 0},                               // 422
		json.RawMessage(`{"customer": "batcher", "feature": "chat.request", "quantity": 1.23456}`),              // 400
		map[string]any{"customer": cus, "feature": "image.generate", "quantity": 1},                             // 201, 2 left
		map[string]any{"customer": cus, "feature": "image.generate", "quantity": 1, "idempotency_key": "b-1"},   // replay
	}}).want(t, http.StatusOK)
	results := arr(t, r.Body["data"])
	want := []struct {
		status int
		typ    string
	}{{201, ""}, {402, billing.CodeInsufficientCredits}, {422, billing.CodeUnknownFeature}, {404, billing.CodeCustomerNotFound},
		{422, billing.CodeInvalidQuantity}, {400, billing.CodeInvalidRequest}, {201, ""}, {201, ""}}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(results), len(want), r.Raw)
	}
	for i, w := range want {
		res := obj(t, results[i])
		if got := num(t, res["status"]); got != fmt.Sprint(w.status) {
			t.Fatalf("event %d: status %s, want %d: %v", i, got, w.status, res)
		}
		if w.typ != "" {
			e := obj(t, res["error"])
			if e["type"] != w.typ || e["message"] == "" {
				t.Fatalf("event %d: error %v, want %s", i, e, w.typ)
			}
			if res["debit"] != nil {
				t.Fatalf("event %d: a refused event has a debit", i)
			}
		}
	}
	first := obj(t, obj(t, results[0])["debit"])
	if num(t, first["balance_after"]) != "7" || first["customer"] != cus {
		t.Fatalf("first debit: %v", first)
	}
	if e := obj(t, obj(t, results[1])["error"]); num(t, e["required"]) != "10" || num(t, e["balance"]) != "7" {
		t.Fatalf("402 details: %v", e)
	}
	if d := obj(t, obj(t, results[6])["debit"]); num(t, d["balance_after"]) != "2" {
		t.Fatalf("seventh debit: %v", d)
	}
	last := obj(t, results[7])
	if last["replayed"] != true || obj(t, last["debit"])["id"] != first["id"] {
		t.Fatalf("replayed event: %v", last)
	}
	// Only the two successful events were written.
	if b := a.balance(t, cus); num(t, b["balance"]) != "2" {
		t.Fatalf("balance %v, want 2", b["balance"])
	}
	if us := a.walk(t, "/api/v1/customers/"+cus+"/usage"); len(us) != 2 {
		t.Fatalf("%d debits, want 2", len(us))
	}
	a.checkLedgerInvariant(t, cus)

	t.Run("refused batches", func(t *testing.T) {
		ev := map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1}
		tooMany := make([]any, handlers.MaxBatch+1)
		for i := range tooMany {
			tooMany[i] = ev
		}
		for _, tc := range []struct {
			name   string
			body   any
			status int
			typ    string
		}{
			{"more than 1000 events", map[string]any{"events": tooMany}, 400, billing.CodeInvalidRequest},
			{"empty events", map[string]any{"events": []any{}}, 400, billing.CodeInvalidRequest},
			{"no events field", map[string]any{}, 400, billing.CodeInvalidRequest},
			{"malformed JSON", `{"events": [`, 400, billing.CodeInvalidRequest},
			{"unknown field", `{"events": [], "x": 1}`, 400, billing.CodeInvalidRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a.do("POST", "/api/v1/usage/batch", a.Meter, tc.body).wantError(t, tc.status, tc.typ)
			})
		}
		if b := a.balance(t, cus); num(t, b["balance"]) != "2" {
			t.Fatalf("a refused batch changed the balance to %v", b["balance"])
		}
	})
	t.Run("exactly 1000 events", func(t *testing.T) {
		a.grant(t, cus, "1000", billing.SourcePurchase)
		evs := make([]any, handlers.MaxBatch)
		for i := range evs {
			evs[i] = map[string]any{"customer": cus, "feature": "chat.request", "quantity": 1, "idempotency_key": fmt.Sprintf("k-%d", i)}
		}
		r := a.do("POST", "/api/v1/usage/batch", a.Meter, map[string]any{"events": evs}).want(t, http.StatusOK)
		for i, res := range arr(t, r.Body["data"]) {
			if num(t, obj(t, res)["status"]) != "201" {
				t.Fatalf("event %d: %v", i, res)
			}
		}
		if b := a.balance(t, cus); num(t, b["balance"]) != "2" {
			t.Fatalf("balance %v, want 2", b["balance"])
		}
		a.checkLedgerInvariant(t, cus)
	})
}

func TestQuote(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "quoted")
	a.grant(t, cus, "8", billing.SourcePurchase)
	q := func(query string) response {
		return a.do("GET", "/api/v1/quote?"+query, a.Read, nil)
	}

	r := q("customer=quoted&feature=image.generate").want(t, http.StatusOK)
	if r.Body["object"] != "quote" || r.Body["customer"] != cus || num(t, r.Body["quantity"]) != "1" ||
		num(t, r.Body["credits"]) != "5" || r.Body["affordable"] != true || num(t, r.Body["available"]) != "8" ||
		num(t, r.Body["price_version"]) != "1" {
		t.Fatalf("quote: %s", r.Raw)
	}
	if _, ok := r.Body["reason"]; ok {
		t.Fatalf("an affordable quote has a reason: %s", r.Raw)
	}

	r = q("customer="+cus+"&feature=gpt-4o.tokens&quantity=1234").want(t, http.StatusOK)
	if num(t, r.Body["credits"]) != "3.085" {
		t.Fatalf("quote: %s", r.Raw)
	}

	r = q("customer=quoted&feature=image.generate&quantity=2").want(t, http.StatusOK)
	if r.Body["affordable"] != false || r.Body["reason"] != billing.CodeInsufficientCredits || num(t, r.Body["credits"]) != "10" {
		t.Fatalf("quote: %s", r.Raw)
	}

	a.do("PUT", "/api/v1/customers/quoted/limits", a.Admin, map[string]any{"daily_cap": 3}).want(t, http.StatusOK)
	r = q("customer=quoted&feature=image.generate").want(t, http.StatusOK)
	if r.Body["affordable"] != false || r.Body["reason"] != billing.CodeSpendLimitExceeded {
		t.Fatalf("quote: %s", r.Raw)
	}
	a.do("PUT", "/api/v1/customers/quoted/limits", a.Admin, map[string]any{}).want(t, http.StatusOK)

	for _, tc := range []struct {
		name, query string
		status      int
		typ         string
	}{
		{"unknown feature", "customer=quoted&feature=video.render", 422, billing.CodeUnknownFeature},
		{"no feature", "customer=quoted", 422, billing.CodeUnknownFeature},
		{"zero quantity", "customer=quoted&feature=chat.request&quantity=0", 422, billing.CodeInvalidQuantity},
		{"negative quantity", "customer=quoted&feature=chat.request&quantity=-2", 422, billing.CodeInvalidQuantity},
		{"4 decimals", "customer=quoted&feature=chat.request&quantity=1.0001", 400, billing.CodeInvalidRequest},
		{"not a number", "customer=quoted&feature=chat.request&quantity=two", 400, billing.CodeInvalidRequest},
		{"unknown customer", "customer=nobody&feature=chat.request", 404, billing.CodeCustomerNotFound},
		{"no customer", "feature=chat.request", 422, billing.CodeValidation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q(tc.query).wantError(t, tc.status, tc.typ)
		})
	}

	t.Run("writes nothing", func(t *testing.T) {
		es, _ := a.ledgerSum(t, cus)
		if len(es) != 1 {
			t.Fatalf("%d entries, want only the grant", len(es))
		}
		if b := a.balance(t, cus); num(t, b["balance"]) != "8" {
			t.Fatalf("balance %v", b["balance"])
		}
	})
}

func TestListUsage(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "lister")
	a.grant(t, cus, "1000", billing.SourcePurchase)

	// Three days of usage, one debit an hour, alternating features.
	features := []string{"chat.request", "image.generate", "document.analyze"}
	ids := map[string]bool{}
	perFeature := map[string]int{}
	day2 := testStart.Add(24 * time.Hour).Truncate(24 * time.Hour) // midnight starting the next day
	inDay2 := 0
	for i := range 72 {
		f := features[i%3]
		now := a.Clock.Now()
		r := a.usage(cus, f, "1", "").want(t, http.StatusCreated)
		ids[r.Body["id"].(string)] = true
		perFeature[f]++
		if !now.Before(day2) && now.Before(day2.Add(24*time.Hour)) {
			inDay2++
		}
		a.Clock.Advance(time.Hour)
	}

	t.Run("walk every page", func(t *testing.T) {
		for _, limit := range []int{1, 7, 25, 100} {
			got := a.walk(t, fmt.Sprintf("/api/v1/customers/%s/usage?limit=%d", cus, limit))
			checkPages(t, got, ids)
		}
	})
	t.Run("newest first", func(t *testing.T) {
		got := a.walk(t, "/api/v1/customers/lister/usage?limit=10")
		for i := 1; i < len(got); i++ {
			if entryNum(t, got[i]) >= entryNum(t, got[i-1]) {
				t.Fatalf("entry %v listed after %v", got[i]["id"], got[i-1]["id"])
			}
		}
	})
	t.Run("feature filter", func(t *testing.T) {
		for _, f := range features {
			got := a.walk(t, "/api/v1/customers/"+cus+"/usage?limit=5&feature="+f)
			if len(got) != perFeature[f] {
				t.Fatalf("%s: %d debits, want %d", f, len(got), perFeature[f])
			}
			for _, e := range got {
				if e["feature"] != f || e["type"] != billing.EntryDebit {
					t.Fatalf("%s: got %v", f, e)
				}
			}
		}
	})
	t.Run("from and to", func(t *testing.T) {
		from := day2.Format(time.DateOnly)
		to := day2.Add(24 * time.Hour).Format(time.DateOnly)
		got := a.walk(t, "/api/v1/customers/"+cus+"/usage?limit=4&from="+from+"&to="+to)
		if len(got) != inDay2 || inDay2 != 24 {
			t.Fatalf("%d debits on %s, want %d (24)", len(got), from, inDay2)
		}
		for _, e := range got {
			at, err := time.Parse(time.RFC3339Nano, e["created_at"].(string))
			if err != nil || at.Before(day2) || !at.Before(day2.Add(24*time.Hour)) {
				t.Fatalf("entry at %v outside [%s, %s)", e["created_at"], from, to)
			}
		}
		// RFC 3339 times work too; to is exclusive.
		got = a.walk(t, "/api/v1/customers/"+cus+"/usage?from="+testStart.Format(time.RFC3339)+"&to="+testStart.Add(2*time.Hour).Format(time.RFC3339))
		if len(got) != 2 {
			t.Fatalf("%d debits in the first two hours, want 2", len(got))
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"from=yesterday", "to=2026-13-01", "limit=0", "limit=101", "cursor=bogus"} {
			e := a.do("GET", "/api/v1/customers/"+cus+"/usage?"+q, a.Read, nil).wantError(t, http.StatusBadRequest, billing.CodeInvalidRequest)
			if e["param"] != strings.SplitN(q, "=", 2)[0] {
				t.Fatalf("%s: param %v", q, e["param"])
			}
		}
	})
}

// checkPages checks a walk returned every id of want exactly once.
func checkPages(t *testing.T, got []map[string]any, want map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range got {
		id := e["id"].(string)
		if seen[id] {
			t.Fatalf("entry %s listed twice", id)
		}
		if !want[id] {
			t.Fatalf("entry %s was not expected", id)
		}
		seen[id] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("walked %d entries, want %d (gaps)", len(seen), len(want))
	}
}

func entryNum(t *testing.T, e map[string]any) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(e["id"].(string), "ent_%d", &n); err != nil {
		t.Fatalf("id %v: %v", e["id"], err)
	}
	return n
}

// TestReplayOutlivesStateChanges checks a retry of a debit that succeeded
// replays it even when the same request would now be refused.
func TestReplayOutlivesStateChanges(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "retrier")
	a.grant(t, cus, "10", billing.SourcePurchase)
	first := a.usage(cus, "image.generate", "1", "r-1").want(t, http.StatusCreated)

	replay := func(t *testing.T) {
		t.Helper()
		r := a.usage(cus, "image.generate", "1", "r-1").want(t, http.StatusCreated)
		if r.Body["id"] != first.Body["id"] || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %s", r.Raw)
		}
	}
	t.Run("after a spend cap", func(t *testing.T) {
		a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, map[string]any{"daily_cap": 0}).want(t, http.StatusOK)
		a.usage(cus, "chat.request", "1", "").wantError(t, http.StatusTooManyRequests, billing.CodeSpendLimitExceeded)
		replay(t)
		a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, map[string]any{}).want(t, http.StatusOK)
	})
	t.Run("after the credits ran out", func(t *testing.T) {
		a.usage(cus, "image.generate", "1", "").want(t, http.StatusCreated)
		a.usage(cus, "chat.request", "1", "").wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
		replay(t)
	})
	t.Run("after the feature left the price book", func(t *testing.T) {
		pb := testPriceBook()
		pb.Features = pb.Features[:1]
		a.do("POST", "/api/v1/price-books", a.Admin, pb).want(t, http.StatusCreated)
		replay(t)
	})
	a.checkLedgerInvariant(t, cus)
}

func TestOverdraft(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "overdrawn")
	a.grant(t, cus, "3", billing.SourcePurchase)
	r := a.do("PUT", "/api/v1/customers/"+cus+"/limits", a.Admin, map[string]any{"overdraft_limit": 5}).want(t, http.StatusOK)
	if num(t, obj(t, r.Body["limits"])["overdraft_limit"]) != "5" {
		t.Fatalf("limits: %s", r.Raw)
	}

	q := a.do("GET", "/api/v1/quote?customer="+cus+"&feature=image.generate", a.Read, nil).want(t, http.StatusOK)
	if q.Body["affordable"] != true {
		t.Fatalf("quote within the overdraft: %s", q.Raw)
	}
	d := a.usage(cus, "image.generate", "1", "").want(t, http.StatusCreated)
	if num(t, d.Body["balance_after"]) != "-2" {
		t.Fatalf("debit: %s", d.Raw)
	}
	a.usage(cus, "chat.request", "3", "").want(t, http.StatusCreated) // -5: the limit exactly
	e := a.usage(cus, "chat.request", "0.001", "").wantError(t, http.StatusPaymentRequired, billing.CodeInsufficientCredits)
	if num(t, e["balance"]) != "-5" {
		t.Fatalf("details: %v", e)
	}
	b := a.balance(t, cus)
	if num(t, b["balance"]) != "-5" || num(t, b["overdraft_limit"]) != "5" || len(arr(t, b["lots"])) != 0 {
		t.Fatalf("balance: %v", b)
	}
	a.checkLedgerInvariant(t, cus)

	// A top-up pays the overdraft back first; the new lot holds the rest.
	g := a.grant(t, cus, "12", billing.SourcePurchase)
	if num(t, g["balance_after"]) != "7" || num(t, obj(t, g["lot"])["remaining"]) != "7" {
		t.Fatalf("grant: %v", g)
	}
	b = a.balance(t, cus)
	lots := arr(t, b["lots"])
	if num(t, b["balance"]) != "7" || len(lots) != 1 || num(t, obj(t, lots[0])["remaining"]) != "7" {
		t.Fatalf("balance: %v", b)
	}
	a.checkLedgerInvariant(t, cus)
}
