package billing

import (
	"fmt"
	"testing"
)

func impactBooks() (*PriceBook, *PriceBook) {
	cur := &PriceBook{Version: 1, Currency: "usd", Features: []Feature{
		{Key: "chat", Name: "Chat", Credits: CreditsOf(1), UnitSize: 1},
		{Key: "img", Name: "Image", Credits: CreditsOf(5), UnitSize: 1},
		{Key: "gpt", Name: "GPT", Dimensions: []Dimension{
			{Key: "input_tokens", Credits: 2500, UnitSize: 1000},   // 2.5 per 1,000
			{Key: "output_tokens", Credits: 10000, UnitSize: 1000}, // 10 per 1,000
		}},
		{Key: "old", Name: "Old", Credits: CreditsOf(2), UnitSize: 1},
	}}
	draft := &PriceBook{Currency: "usd", Features: []Feature{
		{Key: "chat", Name: "Chat requests", Credits: 1500, UnitSize: 1}, // 1 -> 1.5
		{Key: "img", Name: "Image", Credits: CreditsOf(5), UnitSize: 1},  // unchanged
		{Key: "gpt", Name: "GPT", Dimensions: []Dimension{
			{Key: "input_tokens", Credits: 2000, UnitSize: 1000}, // 2.5 -> 2
			// output_tokens removed
		}},
		// old removed
	}}
	return cur, draft
}

// PreviewImpact against hand-computed totals.
func TestPreviewImpact(t *testing.T) {
	cur, draft := impactBooks()
	usage := []UsageTotal{
		{Customer: "a", Feature: "chat", Events: 10, Quantity: QuantityOf(10)}, // 10 -> 15
		{Customer: "b", Feature: "chat", Events: 2, Quantity: QuantityOf(100)}, // 100 -> 150
		{Customer: "a", Feature: "img", Events: 3, Quantity: QuantityOf(3)},    // 15 -> 15
		{Customer: "c", Feature: "img", Events: 1, Quantity: QuantityOf(1)},    // 5 -> 5: not changed
		{Customer: "c", Feature: "gpt", Events: 4, Quantities: Quantities{ // in: 2.5*4 = 10 -> 2*4 = 8; out: 10*0.5 = 5 -> 0
			"input_tokens": QuantityOf(4000), "output_tokens": QuantityOf(500)}},
		{Customer: "d", Feature: "old", Events: 7, Quantity: QuantityOf(7)}, // 14 -> 0
		{Customer: "e", Feature: "chat", Events: 1, Quantity: 333},          // 0.333 units: 0.333 -> 0.4995 = 0.499
	}
	im := PreviewImpact(usage, cur, draft, 2)
	cases := []struct {
		name      string
		got, want Credits
	}{
		{"current total", im.Current, CreditsOf(10+100+15+5+15+14) + 333},
		{"draft total", im.Draft, CreditsOf(15+150+15+5+8) + 499},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if im.Events != 28 || im.Customers != 5 || im.Changed != 5 {
		t.Errorf("events %d customers %d changed %d", im.Events, im.Customers, im.Changed)
	}
	feats := map[string]FeatureImpact{}
	for _, f := range im.Features {
		feats[f.Feature] = f
	}
	wantF := map[string][2]Credits{
		"chat": {CreditsOf(110) + 333, CreditsOf(165) + 499},
		"img":  {CreditsOf(20), CreditsOf(20)},
		"gpt":  {CreditsOf(15), CreditsOf(8)},
		"old":  {CreditsOf(14), 0},
	}
	for k, w := range wantF {
		if f := feats[k]; f.Current != w[0] || f.Draft != w[1] {
			t.Errorf("%s = %v -> %v, want %v -> %v", k, f.Current, f.Draft, w[0], w[1])
		}
	}
	if feats["chat"].Name != "Chat requests" || feats["chat"].Customers != 3 || feats["chat"].Unpriced != "" {
		t.Errorf("chat = %+v", feats["chat"])
	}
	if feats["old"].Unpriced == "" || feats["gpt"].Unpriced == "" || feats["img"].Unpriced != "" {
		t.Errorf("unpriced: old %q gpt %q img %q", feats["old"].Unpriced, feats["gpt"].Unpriced, feats["img"].Unpriced)
	}
	// Largest change first: chat (+55.166), old (-14), gpt (-7), img (0).
	order := ""
	for _, f := range im.Features {
		order += f.Feature + " "
	}
	if order != "chat old gpt img " {
		t.Errorf("feature order %q", order)
	}
	// Top 2 customers by the size of their change: b (+50), d (-14).
	if len(im.Top) != 2 || im.Top[0].Customer != "b" || im.Top[0].Delta() != CreditsOf(50) ||
		im.Top[1].Customer != "d" || im.Top[1].Delta() != -CreditsOf(14) {
		t.Errorf("top = %+v", im.Top)
	}
	if im.Top[0].ChangeBps() != 5000 || im.Top[1].ChangeBps() != -10000 {
		t.Errorf("change bps %d %d", im.Top[0].ChangeBps(), im.Top[1].ChangeBps())
	}
}

// No usage: nothing changes; no current version: everything is new.
func TestPreviewImpactEdges(t *testing.T) {
	cur, draft := impactBooks()
	if im := PreviewImpact(nil, cur, draft, 10); im.Events != 0 || im.Delta() != 0 || len(im.Top) != 0 || im.DeltaBps() != 0 {
		t.Errorf("no usage = %+v", im)
	}
	im := PreviewImpact([]UsageTotal{{Customer: "a", Feature: "chat", Events: 1, Quantity: QuantityOf(2)}}, nil, draft, 10)
	if im.Current != 0 || im.Draft != 3000 || len(im.Top) != 1 {
		t.Errorf("no current version = %+v", im)
	}
	// A month's quantity beyond one event's bounds is priced, not refused.
	big := []UsageTotal{{Customer: "a", Feature: "chat", Events: 1 << 20, Quantity: MaxQuantity}, {Customer: "a", Feature: "chat", Events: 1, Quantity: MaxQuantity}}
	if im := PreviewImpact(big, cur, draft, 10); im.Current <= 0 || im.Draft <= im.Current {
		t.Errorf("large totals = %v -> %v", im.Current, im.Draft)
	}
}

// FieldErrors finds every error the publish validation would, each under
// the field it concerns, and none for a valid book.
func TestFieldErrors(t *testing.T) {
	off := false
	ok := PriceBook{Currency: "usd", Features: []Feature{{Key: "chat", Credits: CreditsOf(1)}},
		Packs:       []CreditPack{{ID: "starter", Credits: CreditsOf(100), Price: Money{Amount: 500}, Bonus: CreditsOf(10), Active: &off}},
		CustomTopUp: &CustomTopUp{Min: 500, Max: 10000, CreditsPerUnit: CreditsOf(20)}}
	if errs := ok.FieldErrors(); len(errs) != 0 {
		t.Fatalf("a valid book: %v", errs)
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	bad := PriceBook{Currency: "usd", Features: []Feature{
		{Key: "chat", Credits: CreditsOf(1)},
		{Key: "Bad Key", Credits: 1},
		{Key: "chat", Credits: 1},
		{Key: "gpt", Credits: 5, Dimensions: []Dimension{{Key: "in", Credits: 1}, {Key: "out", Credits: -1}}},
	},
		Packs:       []CreditPack{{ID: "p", Credits: 0, Price: Money{Amount: 100}}, {ID: "q", Credits: 1, Price: Money{Amount: 0}}},
		Plans:       []Plan{{Key: "pro", Price: Money{Amount: 100}, Credits: 0}},
		CustomTopUp: &CustomTopUp{Min: 500, Max: 100},
	}
	errs := bad.FieldErrors()
	for _, k := range []string{"features[1].key", "features[2].key", "features[3].credits", "packs[0].credits", "packs[1].price",
		"plans[0]", "custom_top_up.max"} {
		if errs[k] == "" {
			t.Errorf("no error for %s (got %v)", k, errs)
		}
	}
	if errs["features[0].key"] != "" || errs["features[0].credits"] != "" {
		t.Errorf("errors on a valid feature: %v", errs)
	}
	// The dimension's own error shows once the feature's credits are fixed.
	bad.Features[3].Credits = 0
	if e := bad.FieldErrors()["features[3].dimensions[1].credits"]; e == "" {
		t.Errorf("no dimension error: %v", bad.FieldErrors())
	}
	// Each error is Validate's own, for the same book.
	one := PriceBook{Currency: "usd", Features: []Feature{{Key: "chat", Credits: -1}}}
	cp := one.Clone()
	err := cp.Validate()
	if got := one.FieldErrors()["features[0].credits"]; got != ErrorMessage(err) {
		t.Errorf("message %q, Validate says %q", got, ErrorMessage(err))
	}
	if e := (PriceBook{Currency: "usd"}).FieldErrors(); e["features"] == "" {
		t.Errorf("no features: %v", e)
	}
	if e := (PriceBook{Currency: "dollars", Features: ok.Features}).FieldErrors(); e["currency"] == "" || len(e) != 1 {
		t.Errorf("bad currency: %v", e)
	}
}

func TestParseMarginPercent(t *testing.T) {
	for in, want := range map[string]int64{"60": 6000, "62.5": 6250, "0": 0, "99.99%": 9999, " 40 % ": 4000} {
		if got, err := ParseMarginPercent(in); err != nil || got != want {
			t.Errorf("%q = %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "100", "-1", "60.123", "abc"} {
		if _, err := ParseMarginPercent(in); ErrorCode(err) != CodeValidation {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// A price book's custom top-up range and rate price custom amounts; the
// policy's range and the smallest pack's rate apply without it.
func TestCustomTopUpRate(t *testing.T) {
	pb := &PriceBook{Currency: "usd", Packs: []CreditPack{{ID: "s", Credits: CreditsOf(1000), Price: Money{Amount: 1000, Currency: "usd"}}}}
	pol := PaymentPolicy{CustomMin: 500, CustomMax: 100000}
	c, _, err := CustomCredits(pb, 2500, pol)
	if err != nil || c != CreditsOf(2500) {
		t.Fatalf("pack rate: %v %v", c, err)
	}
	pb.CustomTopUp = &CustomTopUp{Min: 2000, Max: 3000, CreditsPerUnit: CreditsOf(120)}
	c, m, err := CustomCredits(pb, 2500, pol)
	if err != nil || c != CreditsOf(3000) || m.Amount != 2500 {
		t.Fatalf("custom rate: %v %v %v", c, m, err)
	}
	if _, _, err := CustomCredits(pb, 1000, pol); ErrorCode(err) != CodeValidation {
		t.Fatalf("below the price book's minimum: %v", err)
	}
	if p, err := PriceForCredits(pb, CreditsOf(3000), pol); err != nil || p.Amount != 2500 {
		t.Fatalf("price for credits: %v %v", p, err)
	}
	if got := fmt.Sprint(pb.CustomPolicy(pol).CustomMin, pb.CustomPolicy(pol).CustomMax); got != "2000 3000" {
		t.Fatalf("policy = %s", got)
	}
}
