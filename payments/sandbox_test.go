package payments

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
)

const sandboxBase = "http://tally.test"

// newTestSandbox is a sandbox whose clock reads 2026-03-15.
func newTestSandbox(t *testing.T) *SandboxProvider {
	t.Helper()
	s := NewSandbox(sandboxBase + "/")
	s.now = func() time.Time { return time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC) }
	return s
}

// sandboxCardFor runs a card setup for number and returns the saved card.
func sandboxCardFor(t *testing.T, s *SandboxProvider, number string) billing.Card {
	t.Helper()
	setup, err := s.StartCardSetup(context.Background(), "cus_sandbox_x", "http://tally.test/portal/cards/added", "http://tally.test/portal/cards")
	mustNoErr(t, err)
	if _, err := s.AddCard(setup.ProviderID, number, 12, 2030, "123"); err != nil {
		t.Fatalf("AddCard(%s): %v", number, err)
	}
	card, err := s.CompleteCardSetup(context.Background(), "cus_sandbox_x", setup.ProviderID)
	mustNoErr(t, err)
	return card
}

func chargeReq(pm, key string) billing.ChargeRequest {
	return billing.ChargeRequest{
		ProviderCustomerID: "cus_sandbox_x",
		PaymentMethodID:    pm,
		Amount:             billing.Money{Amount: 2000, Currency: "usd"},
		Description:        "2,000 credits",
		IdempotencyKey:     key,
		Metadata:           map[string]string{MetadataTopUp: "top_" + key},
		ReturnURL:          "http://tally.test/portal/top-ups/top_1?x=1&y=2",
	}
}

func TestSandboxName(t *testing.T) {
	if got := NewSandbox(sandboxBase).Name(); got != "sandbox" {
		t.Fatalf("Name = %q", got)
	}
}

func TestSandboxEnsureCustomer(t *testing.T) {
	s := newTestSandbox(t)
	ctx := context.Background()
	got, err := s.EnsureCustomer(ctx, billing.Customer{ID: "cus_1"}, "cus_sandbox_existing")
	mustNoErr(t, err)
	if got != "cus_sandbox_existing" {
		t.Errorf("with an existing id: %q", got)
	}
	a, err := s.EnsureCustomer(ctx, billing.Customer{ID: "cus_1", Email: "a@example.com"}, "")
	mustNoErr(t, err)
	if !strings.HasPrefix(a, "cus_sandbox_") || len(a) <= len("cus_sandbox_") {
		t.Errorf("new id %q", a)
	}
	again, _ := s.EnsureCustomer(ctx, billing.Customer{ID: "cus_1"}, "")
	if again != a {
		t.Errorf("same Tally customer got %q then %q", a, again)
	}
	other, _ := s.EnsureCustomer(ctx, billing.Customer{ID: "cus_2"}, "")
	if other == a {
		t.Errorf("two customers share %q", a)
	}
	_, err = s.EnsureCustomer(ctx, billing.Customer{}, "")
	wantCode(t, err, billing.CodeValidation)
}

func TestSandboxCardSetup(t *testing.T) {
	s := newTestSandbox(t)
	ctx := context.Background()
	setup, err := s.StartCardSetup(ctx, "cus_sandbox_x", "http://tally.test/portal/cards/added?from=menu", "http://tally.test/portal/cards")
	mustNoErr(t, err)
	if !strings.HasPrefix(setup.ProviderID, "cs_sandbox_") {
		t.Fatalf("setup id %q", setup.ProviderID)
	}
	u, err := url.Parse(setup.URL)
	mustNoErr(t, err)
	if got := u.Scheme + "://" + u.Host + u.Path; got != sandboxBase+"/sandbox/cards/new" {
		t.Errorf("page = %q", got)
	}
	wantSuccess := "http://tally.test/portal/cards/added?from=menu&session_id=" + setup.ProviderID
	q := u.Query()
	// On the sandbox's own site, the page's links are site-relative.
	if q.Get("setup") != setup.ProviderID || q.Get("return") != "/portal/cards/added?from=menu&session_id="+setup.ProviderID || q.Get("cancel") != "/portal/cards" {
		t.Errorf("query = %v", q)
	}
	if !strings.HasPrefix(setup.URL, sandboxBase+"/sandbox/cards/new?setup="+setup.ProviderID+"&return=") {
		t.Errorf("URL %q: want setup, return, cancel in that order", setup.URL)
	}

	stored, err := s.CardSetup(setup.ProviderID)
	mustNoErr(t, err)
	if stored.SuccessURL != wantSuccess || stored.CancelURL != "http://tally.test/portal/cards" || stored.ProviderCustomerID != "cus_sandbox_x" || stored.Card != nil {
		t.Errorf("CardSetup = %+v", stored)
	}

	_, err = s.CompleteCardSetup(ctx, "cus_sandbox_x", setup.ProviderID)
	wantCode(t, err, billing.CodeValidation) // no card yet

	card, err := s.AddCard(setup.ProviderID, "4242 4242 4242 4242", 4, 30, "123")
	mustNoErr(t, err)
	if card.Brand != "visa" || card.Last4 != "4242" || card.ExpMonth != 4 || card.ExpYear != 2030 || !strings.HasPrefix(card.ProviderID, "pm_sandbox_4242_") {
		t.Errorf("card = %+v", card)
	}
	done, err := s.CompleteCardSetup(ctx, "cus_sandbox_x", setup.ProviderID)
	mustNoErr(t, err)
	if done != card {
		t.Errorf("CompleteCardSetup = %+v, want %+v", done, card)
	}
	if stored, _ := s.CardSetup(setup.ProviderID); stored.Card == nil || *stored.Card != card {
		t.Errorf("CardSetup after AddCard = %+v", stored)
	}
	_, err = s.AddCard(setup.ProviderID, SandboxCardSucceeds, 4, 2030, "123")
	wantCode(t, err, billing.CodeConflict)

	_, err = s.CompleteCardSetup(ctx, "cus_sandbox_x", "cs_sandbox_nope")
	wantCode(t, err, billing.CodeNotFound)
	// A setup completes for its own customer only: another's is not found,
	// as is one asked for by no customer.
	_, err = s.CompleteCardSetup(ctx, "cus_sandbox_other", setup.ProviderID)
	wantCode(t, err, billing.CodeNotFound)
	_, err = s.CompleteCardSetup(ctx, "", setup.ProviderID)
	wantCode(t, err, billing.CodeNotFound)
	if again, err := s.CompleteCardSetup(ctx, "cus_sandbox_x", setup.ProviderID); err != nil || again != card {
		t.Errorf("the owner's setup after another customer's attempt: %+v %v", again, err)
	}
	_, err = s.AddCard("cs_sandbox_nope", SandboxCardSucceeds, 4, 2030, "123")
	wantCode(t, err, billing.CodeNotFound)
	_, err = s.CardSetup("cs_sandbox_nope")
	wantCode(t, err, billing.CodeNotFound)

	for _, bad := range [][2]string{{"", "http://a/b"}, {"http://a/b", "/relative"}, {"ftp://a/b", "http://a/b"}} {
		_, err := s.StartCardSetup(ctx, "cus_sandbox_x", bad[0], bad[1])
		wantCode(t, err, billing.CodeValidation)
	}
	_, err = s.StartCardSetup(ctx, "", "http://a/b", "http://a/c")
	wantCode(t, err, billing.CodeValidation)
}

func TestSandboxAddCardValidation(t *testing.T) {
	// The clock reads 2026-03-15.
	tests := []struct {
		name             string
		number           string
		month, year      int
		cvc              string
		param            string // "" means valid
		wantLast4        string
		wantYear         int
		messageSubstring string
	}{
		{name: "succeeding card", number: "4242424242424242", month: 12, year: 2030, cvc: "123", wantLast4: "4242", wantYear: 2030},
		{name: "declined card with dashes", number: "4000-0000-0000-0002", month: 1, year: 2027, cvc: "9999", wantLast4: "0002", wantYear: 2027},
		{name: "authentication card, two-digit year", number: " 4000 0027 6000 3184 ", month: 3, year: 26, cvc: "000", wantLast4: "3184", wantYear: 2026},
		{name: "valid through the end of this month", number: SandboxCardSucceeds, month: 3, year: 2026, cvc: "123", wantLast4: "4242", wantYear: 2026},
		{name: "fails Luhn", number: "4242424242424241", month: 12, year: 2030, cvc: "123", param: "number", messageSubstring: "invalid"},
		{name: "real card number that is not a test card", number: "5555555555554444", month: 12, year: 2030, cvc: "123", param: "number", messageSubstring: "4242 4242 4242 4242"},
		{name: "letters", number: "4242abcd42424242", month: 12, year: 2030, cvc: "123", param: "number"},
		{name: "too short", number: "42424242", month: 12, year: 2030, cvc: "123", param: "number"},
		{name: "empty", number: "", month: 12, year: 2030, cvc: "123", param: "number"},
		{name: "month 13", number: SandboxCardSucceeds, month: 13, year: 2030, cvc: "123", param: "exp_month"},
		{name: "month 0", number: SandboxCardSucceeds, month: 0, year: 2030, cvc: "123", param: "exp_month"},
		{name: "expired last month", number: SandboxCardSucceeds, month: 2, year: 2026, cvc: "123", param: "exp_year", messageSubstring: "expired"},
		{name: "expired last year", number: SandboxCardSucceeds, month: 12, year: 2025, cvc: "123", param: "exp_year", messageSubstring: "expired"},
		{name: "absurd year", number: SandboxCardSucceeds, month: 12, year: 3000, cvc: "123", param: "exp_year"},
		{name: "two-digit CVC", number: SandboxCardSucceeds, month: 12, year: 2030, cvc: "12", param: "cvc"},
		{name: "five-digit CVC", number: SandboxCardSucceeds, month: 12, year: 2030, cvc: "12345", param: "cvc"},
		{name: "letters in CVC", number: SandboxCardSucceeds, month: 12, year: 2030, cvc: "12a", param: "cvc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSandbox(t)
			setup, err := s.StartCardSetup(context.Background(), "cus_sandbox_x", "http://a/ok", "http://a/cancel")
			mustNoErr(t, err)
			card, err := s.AddCard(setup.ProviderID, tt.number, tt.month, tt.year, tt.cvc)
			if tt.param == "" {
				mustNoErr(t, err)
				if card.Last4 != tt.wantLast4 || card.ExpYear != tt.wantYear || card.ExpMonth != tt.month {
					t.Errorf("card = %+v", card)
				}
				return
			}
			be := wantCode(t, err, billing.CodeValidation)
			if be.Details["param"] != tt.param {
				t.Errorf("param = %v, want %s (%s)", be.Details["param"], tt.param, be.Message)
			}
			if !strings.Contains(be.Message, tt.messageSubstring) {
				t.Errorf("message %q lacks %q", be.Message, tt.messageSubstring)
			}
			// A rejected card leaves the setup open.
			if _, err := s.CompleteCardSetup(context.Background(), "cus_sandbox_x", setup.ProviderID); billing.ErrorCode(err) != billing.CodeValidation {
				t.Errorf("setup after a rejected card: %v", err)
			}
		})
	}
}

func TestSandboxLinksOffSite(t *testing.T) {
	s := newTestSandbox(t)
	ctx := context.Background()
	// URLs elsewhere, or on a host that merely starts like the base, stay absolute.
	for _, u := range []string{"https://shop.example/cards", "http://tally.test.evil.example/cards", "http://tally.test//evil.example/x"} {
		setup, err := s.StartCardSetup(ctx, "cus_sandbox_x", u, u)
		mustNoErr(t, err)
		pu, _ := url.Parse(setup.URL)
		if got := pu.Query().Get("cancel"); got != u {
			t.Errorf("cancel = %q, want %q", got, u)
		}
		if got := pu.Query().Get("return"); got != withQuery(u, SessionIDParam, setup.ProviderID) {
			t.Errorf("return = %q", got)
		}
	}
	req := chargeReq("pm_sandbox_3184_x", "k-offsite")
	req.ReturnURL = "https://shop.example/after"
	pay, err := s.Charge(ctx, req)
	mustNoErr(t, err)
	if pu, _ := url.Parse(pay.NextActionURL); pu.Query().Get("return") != req.ReturnURL {
		t.Errorf("NextActionURL = %q", pay.NextActionURL)
	}
}

func TestLuhn(t *testing.T) {
	for _, n := range []string{SandboxCardSucceeds, SandboxCardDeclined, SandboxCardAuthenticate, "79927398713", "5555555555554444"} {
		if !luhn(n) {
			t.Errorf("luhn(%s) = false", n)
		}
	}
	for _, n := range []string{"79927398710", "4242424242424243", "4000000000000001"} {
		if luhn(n) {
			t.Errorf("luhn(%s) = true", n)
		}
	}
}

func TestSandboxCharge(t *testing.T) {
	ctx := context.Background()
	t.Run("4242 succeeds", func(t *testing.T) {
		s := newTestSandbox(t)
		card := sandboxCardFor(t, s, SandboxCardSucceeds)
		for _, off := range []bool{false, true} {
			req := chargeReq(card.ProviderID, fmt.Sprint("k-succeeds-", off))
			req.OffSession = off
			pay, err := s.Charge(ctx, req)
			mustNoErr(t, err)
			if pay.Status != billing.PaymentSucceeded || !strings.HasPrefix(pay.ProviderID, "pi_sandbox_") || pay.ReceiptURL != "" || pay.NextActionURL != "" || pay.FailureReason != "" {
				t.Errorf("off-session %v: %+v", off, pay)
			}
			if pay.Card == nil || *pay.Card != card {
				t.Errorf("card = %+v, want %+v", pay.Card, card)
			}
		}
	})
	t.Run("0002 is declined, without an error", func(t *testing.T) {
		s := newTestSandbox(t)
		card := sandboxCardFor(t, s, SandboxCardDeclined)
		pay, err := s.Charge(ctx, chargeReq(card.ProviderID, "k-declined"))
		mustNoErr(t, err)
		if pay.Status != billing.PaymentFailed || pay.FailureReason != "Your card was declined." || pay.FailureCode != "card_declined" || pay.ProviderID == "" {
			t.Errorf("payment = %+v", pay)
		}
		found, err := s.FindPayment(ctx, pay.ProviderID)
		mustNoErr(t, err)
		if found.Status != billing.PaymentFailed {
			t.Errorf("FindPayment = %+v", found)
		}
	})
	t.Run("3184 requires action on-session", func(t *testing.T) {
		s := newTestSandbox(t)
		card := sandboxCardFor(t, s, SandboxCardAuthenticate)
		req := chargeReq(card.ProviderID, "k-3ds")
		pay, err := s.Charge(ctx, req)
		mustNoErr(t, err)
		want := sandboxBase + "/sandbox/authenticate/" + pay.ProviderID + "?return=" + url.QueryEscape("/portal/top-ups/top_1?x=1&y=2")
		if pay.Status != billing.PaymentRequiresAction || pay.NextActionURL != want || pay.FailureCode != "" {
			t.Errorf("payment = %+v, want NextActionURL %s", pay, want)
		}
		u, _ := url.Parse(pay.NextActionURL)
		if u.Query().Get("return") != "/portal/top-ups/top_1?x=1&y=2" {
			t.Errorf("return = %q", u.Query().Get("return"))
		}
	})
	t.Run("3184 requires action off-session too", func(t *testing.T) {
		s := newTestSandbox(t)
		card := sandboxCardFor(t, s, SandboxCardAuthenticate)
		req := chargeReq(card.ProviderID, "k-3ds-off")
		req.OffSession, req.ReturnURL = true, ""
		pay, err := s.Charge(ctx, req)
		mustNoErr(t, err)
		if pay.Status != billing.PaymentRequiresAction || pay.NextActionURL != sandboxBase+"/sandbox/authenticate/"+pay.ProviderID || pay.FailureCode != "authentication_required" {
			t.Errorf("payment = %+v", pay)
		}
	})
	t.Run("a card saved before a restart still charges", func(t *testing.T) {
		s := newTestSandbox(t)
		pay, err := s.Charge(ctx, chargeReq("pm_sandbox_0002_fromanotherprocess", "k-restart"))
		mustNoErr(t, err)
		if pay.Status != billing.PaymentFailed || pay.Card == nil || pay.Card.Last4 != "0002" {
			t.Errorf("payment = %+v", pay)
		}
	})
}

func TestSandboxChargeValidation(t *testing.T) {
	s := newTestSandbox(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		modify func(*billing.ChargeRequest)
		code   string
	}{
		{"no idempotency key", func(r *billing.ChargeRequest) { r.IdempotencyKey = "" }, billing.CodeValidation},
		{"no card", func(r *billing.ChargeRequest) { r.PaymentMethodID = "" }, billing.CodeNoPaymentMethod},
		{"a Stripe card", func(r *billing.ChargeRequest) { r.PaymentMethodID = "pm_1OaBcD" }, billing.CodeNoPaymentMethod},
		{"not a card id", func(r *billing.ChargeRequest) { r.PaymentMethodID = "card_123" }, billing.CodeValidation},
		{"not a test card", func(r *billing.ChargeRequest) { r.PaymentMethodID = "pm_sandbox_1111_abc" }, billing.CodeNoPaymentMethod},
		{"no customer", func(r *billing.ChargeRequest) { r.ProviderCustomerID = "" }, billing.CodeValidation},
		{"zero amount", func(r *billing.ChargeRequest) { r.Amount.Amount = 0 }, billing.CodeValidation},
		{"upper-case currency", func(r *billing.ChargeRequest) { r.Amount.Currency = "USD" }, billing.CodeValidation},
		{"on-session without return URL", func(r *billing.ChargeRequest) { r.ReturnURL = "" }, billing.CodeValidation},
		{"relative return URL", func(r *billing.ChargeRequest) { r.ReturnURL = "/portal" }, billing.CodeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := chargeReq("pm_sandbox_4242_abc", "k-"+tt.name)
			tt.modify(&req)
			_, err := s.Charge(ctx, req)
			wantCode(t, err, tt.code)
		})
	}
	if n := len(s.payments); n != 0 {
		t.Errorf("rejected charges made %d payments", n)
	}
}

func TestSandboxChargeIdempotency(t *testing.T) {
	s := newTestSandbox(t)
	ctx := context.Background()
	for _, number := range []string{SandboxCardSucceeds, SandboxCardDeclined, SandboxCardAuthenticate} {
		card := sandboxCardFor(t, s, number)
		req := chargeReq(card.ProviderID, "key-"+number)
		first, err := s.Charge(ctx, req)
		mustNoErr(t, err)
		second, err := s.Charge(ctx, req)
		mustNoErr(t, err)
		if first.ProviderID != second.ProviderID || first.Status != second.Status || first.NextActionURL != second.NextActionURL {
			t.Errorf("%s: replay %+v differs from %+v", number, second, first)
		}
		other := req
		other.Amount.Amount++
		_, err = s.Charge(ctx, other)
		wantCode(t, err, billing.CodeIdempotencyConflict)
		other = req
		other.Metadata = map[string]string{MetadataTopUp: "another"}
		_, err = s.Charge(ctx, other)
		wantCode(t, err, billing.CodeIdempotencyConflict)

		fresh := req
		fresh.IdempotencyKey += "-2"
		third, err := s.Charge(ctx, fresh)
		mustNoErr(t, err)
		if third.ProviderID == first.ProviderID {
			t.Errorf("%s: a new key replayed %s", number, first.ProviderID)
		}
	}
	if n := len(s.payments); n != 6 {
		t.Errorf("%d payments, want 6", n)
	}
}

func TestSandboxChargeConcurrentSameKey(t *testing.T) {
	s := newTestSandbox(t)
	const n = 64
	req := chargeReq("pm_sandbox_4242_concurrent", "one-key")
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			pay, err := s.Charge(context.Background(), req)
			ids[i], errs[i] = pay.ProviderID, err
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("goroutine %d got %s, goroutine 0 got %s", i, ids[i], ids[0])
		}
	}
	if len(s.payments) != 1 {
		t.Fatalf("%d payments for one key, want 1", len(s.payments))
	}
}

func TestSandboxAnswersAreCopies(t *testing.T) {
	s := newTestSandbox(t)
	ctx := context.Background()
	pay, err := s.Charge(ctx, chargeReq("pm_sandbox_4242_copy", "k-copy"))
	mustNoErr(t, err)
	pay.Card.Last4 = "9999"
	again, _ := s.FindPayment(ctx, pay.ProviderID)
	if again.Card.Last4 != "4242" {
		t.Fatalf("changing an answer changed the sandbox: %+v", again.Card)
	}
}

func TestSandboxAuthenticate(t *testing.T) {
	ctx := context.Background()
	for _, approve := range []bool{true, false} {
		t.Run(fmt.Sprint("approve=", approve), func(t *testing.T) {
			s := newTestSandbox(t)
			card := sandboxCardFor(t, s, SandboxCardAuthenticate)
			req := chargeReq(card.ProviderID, "k-auth")
			req.Metadata = map[string]string{MetadataTopUp: "top_42"}
			pay, err := s.Charge(ctx, req)
			mustNoErr(t, err)

			page, err := s.Authentication(pay.ProviderID)
			mustNoErr(t, err)
			if page.Amount != req.Amount || page.Description != req.Description || page.ReturnURL != req.ReturnURL || page.Status != billing.PaymentRequiresAction || page.Card == nil || page.Card.Last4 != "3184" {
				t.Errorf("Authentication = %+v", page)
			}

			ev, err := s.Authenticate(pay.ProviderID, approve)
			mustNoErr(t, err)
			if !strings.HasPrefix(ev.ID, "evt_sandbox_") || ev.PaymentID != pay.ProviderID || ev.TopUpID != "top_42" || ev.Card == nil || ev.Card.Last4 != "3184" || !ev.Created.Equal(s.now()) {
				t.Errorf("event = %+v", ev)
			}
			found, err := s.FindPayment(ctx, pay.ProviderID)
			mustNoErr(t, err)
			if found.NextActionURL != "" {
				t.Errorf("NextActionURL kept: %q", found.NextActionURL)
			}
			if approve {
				if ev.Type != billing.EventPaymentSucceeded || ev.FailureReason != "" || found.Status != billing.PaymentSucceeded {
					t.Errorf("approved: event %+v, payment %+v", ev, found)
				}
			} else {
				if ev.Type != billing.EventPaymentFailed || ev.FailureReason != msgAuthFailed || found.Status != billing.PaymentFailed || found.FailureReason != msgAuthFailed {
					t.Errorf("refused: event %+v, payment %+v", ev, found)
				}
			}
			// The same answer again (a double submit) is the same event.
			again, err := s.Authenticate(pay.ProviderID, approve)
			mustNoErr(t, err)
			if again.ID != ev.ID || again.Type != ev.Type {
				t.Errorf("second answer: %+v, first %+v", again, ev)
			}
			_, err = s.Authenticate(pay.ProviderID, !approve)
			wantCode(t, err, billing.CodeConflict)
			// The replayed charge reports the new state.
			replayed, _ := s.Charge(ctx, req)
			if replayed.Status != found.Status {
				t.Errorf("replayed charge %s, payment %s", replayed.Status, found.Status)
			}
		})
	}
	t.Run("event ids are unique", func(t *testing.T) {
		s := newTestSandbox(t)
		seen := map[string]bool{}
		for i := range 20 {
			pay, err := s.Charge(ctx, chargeReq("pm_sandbox_3184_x", fmt.Sprint("k", i)))
			mustNoErr(t, err)
			ev, err := s.Authenticate(pay.ProviderID, i%2 == 0)
			mustNoErr(t, err)
			if seen[ev.ID] {
				t.Fatalf("event id %s twice", ev.ID)
			}
			seen[ev.ID] = true
		}
	})
	t.Run("only payments that wait for it", func(t *testing.T) {
		s := newTestSandbox(t)
		pay, err := s.Charge(ctx, chargeReq("pm_sandbox_4242_x", "k"))
		mustNoErr(t, err)
		_, err = s.Authenticate(pay.ProviderID, true)
		wantCode(t, err, billing.CodeConflict)
		_, err = s.Authenticate("pi_sandbox_nope", true)
		wantCode(t, err, billing.CodeNotFound)
		_, err = s.Authentication("pi_sandbox_nope")
		wantCode(t, err, billing.CodeNotFound)
	})
}

func TestSandboxRefund(t *testing.T) {
	ctx := context.Background()
	s := newTestSandbox(t)
	pay, err := s.Charge(ctx, chargeReq("pm_sandbox_4242_r", "k-refund")) // 2000 usd
	mustNoErr(t, err)
	usd := func(n int64) billing.Money { return billing.Money{Amount: n, Currency: "usd"} }

	r1, err := s.Refund(ctx, pay.ProviderID, usd(500), "r1")
	mustNoErr(t, err)
	if r1.Status != "succeeded" || !strings.HasPrefix(r1.ProviderID, "re_sandbox_") {
		t.Errorf("refund = %+v", r1)
	}
	replayed, err := s.Refund(ctx, pay.ProviderID, usd(500), "r1")
	mustNoErr(t, err)
	if replayed != r1 {
		t.Errorf("replay = %+v, want %+v", replayed, r1)
	}
	_, err = s.Refund(ctx, pay.ProviderID, usd(400), "r1")
	wantCode(t, err, billing.CodeIdempotencyConflict)

	// The replay refunded nothing: 1500 is left, not 1000.
	_, err = s.Refund(ctx, pay.ProviderID, usd(1501), "r2")
	wantCode(t, err, billing.CodeValidation)
	_, err = s.Refund(ctx, pay.ProviderID, billing.Money{Amount: 100, Currency: "eur"}, "r2")
	wantCode(t, err, billing.CodeValidation)
	r2, err := s.Refund(ctx, pay.ProviderID, usd(1500), "r2")
	mustNoErr(t, err)
	if r2.ProviderID == r1.ProviderID {
		t.Error("two refunds share an id")
	}
	_, err = s.Refund(ctx, pay.ProviderID, usd(1), "r3")
	wantCode(t, err, billing.CodeNothingToRefund)

	declined, err := s.Charge(ctx, chargeReq("pm_sandbox_0002_r", "k-declined"))
	mustNoErr(t, err)
	_, err = s.Refund(ctx, declined.ProviderID, usd(100), "r4")
	wantCode(t, err, billing.CodeValidation)
	_, err = s.Refund(ctx, "pi_sandbox_nope", usd(100), "r5")
	wantCode(t, err, billing.CodeNotFound)
	_, err = s.Refund(ctx, "pi_3Ab", usd(100), "r6")
	wantCode(t, err, billing.CodeValidation)
	_, err = s.Refund(ctx, pay.ProviderID, usd(0), "r7")
	wantCode(t, err, billing.CodeValidation)
	_, err = s.Refund(ctx, pay.ProviderID, usd(1), "")
	wantCode(t, err, billing.CodeValidation)
}

func TestSandboxCardsAndEvents(t *testing.T) {
	s := newTestSandbox(t)
	ctx := context.Background()
	mustNoErr(t, s.SetDefaultCard(ctx, "cus_sandbox_x", "pm_sandbox_4242_abc"))
	mustNoErr(t, s.DetachCard(ctx, "pm_sandbox_3184_abc"))
	wantCode(t, s.SetDefaultCard(ctx, "", "pm_sandbox_4242_abc"), billing.CodeValidation)
	wantCode(t, s.SetDefaultCard(ctx, "cus_sandbox_x", "pm_sandbox_4242_"), billing.CodeNoPaymentMethod)
	wantCode(t, s.DetachCard(ctx, "nonsense"), billing.CodeValidation)
	wantCode(t, s.DetachCard(ctx, "pm_sandbox_9999_abc"), billing.CodeNoPaymentMethod)

	_, ok, err := s.ParseEvent([]byte(`{"id":"evt_1","type":"payment_intent.succeeded"}`), "t=1,v1=00")
	wantCode(t, err, billing.CodeInvalidRequest)
	if ok {
		t.Error("ok = true")
	}
	_, err = s.FindPayment(ctx, "pi_sandbox_nope")
	wantCode(t, err, billing.CodeNotFound)
}

// TestSandboxCheckout: the card form of a checkout pays as it takes the
// card; a declined card stays on the form (nothing finished) and another
// can be tried; the same key gives the same page.
func TestSandboxCheckout(t *testing.T) {
	s := newTestSandbox(t)
	ctx := context.Background()
	req := CheckoutRequest{ProviderCustomerID: "cus_sandbox_x", Amount: billing.Money{Amount: 1000, Currency: "usd"}, Description: "Starter: 1,000 credits",
		Metadata: map[string]string{MetadataTopUp: "top_1"}, IdempotencyKey: "tally_checkout_top_1",
		SuccessURL: "http://tally.test/portal/top-ups/checkout", CancelURL: "http://tally.test/portal/top-up"}
	setup, err := s.StartCheckout(ctx, req)
	mustNoErr(t, err)
	again, err := s.StartCheckout(ctx, req)
	mustNoErr(t, err)
	if again != setup {
		t.Fatalf("the same key gave another page: %+v, %+v", again, setup)
	}
	if amt, desc, ok := s.SetupCharge(setup.ProviderID); !ok || amt.Amount != 1000 || desc != "Starter: 1,000 credits" {
		t.Fatalf("SetupCharge = %v %q %v", amt, desc, ok)
	}
	_, err = s.CompleteCheckout(ctx, setup.ProviderID)
	wantCode(t, err, billing.CodeValidation) // no card yet

	_, err = s.AddCard(setup.ProviderID, SandboxCardDeclined, 12, 2030, "123")
	if e := wantCode(t, err, billing.CodeCardDeclined); e.Details["param"] != "number" || e.Message != "Your card was declined. Try another card." {
		t.Fatalf("declined: %+v", e)
	}
	_, err = s.CompleteCheckout(ctx, setup.ProviderID)
	wantCode(t, err, billing.CodeValidation) // still not finished

	card, err := s.AddCard(setup.ProviderID, SandboxCardSucceeds, 12, 2030, "123")
	mustNoErr(t, err)
	res, err := s.CompleteCheckout(ctx, setup.ProviderID)
	mustNoErr(t, err)
	if res.Card != card || res.Payment.Status != billing.PaymentSucceeded || res.Payment.Card == nil || res.Payment.Card.Last4 != "4242" || res.Metadata[MetadataTopUp] != "top_1" {
		t.Fatalf("result %+v", res)
	}
	if a, err := s.Authentication(res.Payment.ProviderID); err != nil || a.Amount.Amount != 1000 {
		t.Fatalf("the payment: %+v %v", a, err)
	}
	// A setup that only saves a card pays nothing.
	plain, err := s.StartCardSetup(ctx, "cus_sandbox_x", "http://tally.test/a", "http://tally.test/b")
	mustNoErr(t, err)
	if _, _, ok := s.SetupCharge(plain.ProviderID); ok {
		t.Fatal("a card setup says it pays")
	}
	_, err = s.CompleteCheckout(ctx, plain.ProviderID)
	wantCode(t, err, billing.CodeValidation)

	// 3-D Secure: the payment waits for the bank's page, which returns to
	// the checkout's success URL.
	req.IdempotencyKey, req.Metadata = "tally_checkout_top_2", map[string]string{MetadataTopUp: "top_2"}
	setup, err = s.StartCheckout(ctx, req)
	mustNoErr(t, err)
	_, err = s.AddCard(setup.ProviderID, SandboxCardAuthenticate, 12, 2030, "123")
	mustNoErr(t, err)
	res, err = s.CompleteCheckout(ctx, setup.ProviderID)
	mustNoErr(t, err)
	if res.Payment.Status != billing.PaymentRequiresAction || !strings.Contains(res.Payment.NextActionURL, "/sandbox/authenticate/") {
		t.Fatalf("3-D Secure checkout: %+v", res.Payment)
	}
}
