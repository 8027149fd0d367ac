package handlers_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/tally-billing/tally/billing"
)

// TestConcurrentDebitsWithRetries sends 64 debits at once against one wallet
// that cannot pay for all of them, each twice with the same idempotency key
// (both copies in flight together, as a client's retry after a timeout
// would be). Every key is charged at most once and the ledger explains the
// balance.
func TestConcurrentDebitsWithRetries(t *testing.T) {
	a := newTestAPI(t)
	cus := a.customer(t, "hammered")
	const granted = 200
	a.grant(t, cus, fmt.Sprint(granted), billing.SourcePurchase)

	features := []struct {
		key    string
		charge billing.Credits
	}{{"chat.request", billing.CreditsOf(1)}, {"image.generate", billing.CreditsOf(5)}, {"document.analyze", billing.CreditsOf(10)}}
	const n = 64
	var demand billing.Credits
	for i := range n {
		demand += features[i%3].charge
	}
	if demand <= billing.CreditsOf(granted) {
		t.Fatalf("demand %s does not exceed the grant", demand)
	}

	type outcome struct {
		status int
		id     string
		charge billing.Credits
		typ    string
	}
	results := make([][2]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := features[i%3]
			key := fmt.Sprintf("conc-%d", i)
			var inner sync.WaitGroup
			for try := range 2 {
				inner.Add(1)
				go func() {
					defer inner.Done()
					r := a.do("POST", "/api/v1/usage", a.Meter, map[string]any{"customer": cus, "feature": f.key, "quantity": 1},
						"Idempotency-Key", key)
					o := outcome{status: r.Status}
					if r.Status == http.StatusCreated {
						o.id, _ = r.Body["id"].(string)
						if c, err := billing.ParseCredits(fmt.Sprint(r.Body["credits_charged"])); err == nil {
							o.charge = c
						}
					} else if e, ok := r.Body["error"].(map[string]any); ok {
						o.typ, _ = e["type"].(string)
					}
					results[i][try] = o
				}()
			}
			inner.Wait()
		}()
	}
	wg.Wait()

	ids := map[string]bool{}
	succeeded := 0
	var charged billing.Credits
	for i, pair := range results {
		x, y := pair[0], pair[1]
		for _, o := range pair {
			if o.status != http.StatusCreated && !(o.status == http.StatusPaymentRequired && o.typ == billing.CodeInsufficientCredits) {
				t.Fatalf("key %d: status %d %s", i, o.status, o.typ)
			}
		}
		if x.status != y.status {
			t.Fatalf("key %d: the two copies disagree: %d and %d", i, x.status, y.status)
		}
		if x.status != http.StatusCreated {
			continue
		}
		if x.id == "" || x.id != y.id {
			t.Fatalf("key %d: copies answered ids %q and %q", i, x.id, y.id)
		}
		if ids[x.id] {
			t.Fatalf("debit %s answered for two keys", x.id)
		}
		if x.charge != features[i%3].charge {
			t.Fatalf("key %d charged %s", i, x.charge)
		}
		ids[x.id] = true
		succeeded++
		charged += x.charge
	}
	if len(ids) != succeeded {
		t.Fatalf("%d distinct debits for %d successful keys", len(ids), succeeded)
	}
	if succeeded == 0 || succeeded == n {
		t.Fatalf("%d of %d keys succeeded; the test wants some refusals", succeeded, n)
	}

	bal := credits(t, a.balance(t, cus)["balance"])
	if bal != billing.CreditsOf(granted)-charged {
		t.Fatalf("balance %s, want %d - %s", bal, granted, charged)
	}
	if bal < 0 {
		t.Fatalf("balance %s is negative", bal)
	}
	// A debit is refused only when it did not fit: what is left is less than
	// the cheapest refused charge.
	for i, pair := range results {
		if pair[0].status == http.StatusPaymentRequired && features[i%3].charge <= bal {
			t.Fatalf("key %d (%s) was refused though %s is left", i, features[i%3].charge, bal)
		}
	}
	usage := a.walk(t, "/api/v1/customers/"+cus+"/usage?limit=7")
	if len(usage) != succeeded {
		t.Fatalf("%d debits listed, want %d", len(usage), succeeded)
	}
	for _, u := range usage {
		if !ids[u["id"].(string)] {
			t.Fatalf("debit %v was never answered", u["id"])
		}
	}
	a.checkLedgerInvariant(t, cus)
}
