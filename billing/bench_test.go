package billing

import (
	"encoding/json"
	"testing"
	"time"
)

func BenchmarkCharge(b *testing.B) {
	f := Feature{Key: "gpt-4o.tokens", Credits: 2500, UnitSize: 1000}
	q := QuantityOf(1234)
	for b.Loop() {
		if _, err := Charge(f, q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMilli(b *testing.B) {
	for b.Loop() {
		if _, err := ParseMilli("1234.567"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreditsMarshalJSON(b *testing.B) {
	c := Credits(28674363)
	for b.Loop() {
		if _, err := json.Marshal(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanDebit(b *testing.B) {
	now := time.Now()
	exp := now.Add(24 * time.Hour)
	lots := []Lot{
		{ID: 1, Source: SourcePurchase, Priority: 50, Amount: CreditsOf(12000), Remaining: CreditsOf(9000), CreatedAt: now.Add(-time.Hour)},
		{ID: 2, Source: SourcePromo, Priority: 10, Amount: CreditsOf(500), Remaining: CreditsOf(3), ExpiresAt: &exp, CreatedAt: now.Add(-2 * time.Hour)},
		{ID: 3, Source: SourceSubscription, Priority: 20, Amount: CreditsOf(2000), Remaining: CreditsOf(100), ExpiresAt: &exp, CreatedAt: now},
	}
	w := Wallet{Balance: CreditsOf(9103)}
	for b.Loop() {
		if _, err := PlanDebit(w, lots, CreditsOf(5), 0, false, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUsageRequestHash(b *testing.B) {
	q := QuantityOf(1)
	r := UsageRequest{Customer: "acme", Feature: "chat.request", Quantity: &q, Metadata: map[string]string{"user": "maria"}}
	for b.Loop() {
		r.Hash("cus_abcdefghijklmnop")
	}
}
