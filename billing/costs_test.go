package billing

import (
	"encoding/json"
	"os"
	"testing"
)

var (
	pack10 = CreditPack{ID: "pack_1000", Credits: CreditsOf(1000), Price: Money{Amount: 10_00, Currency: "usd"}} // 1 cent a credit
	pack50 = CreditPack{ID: "pack_5500", Credits: CreditsOf(5500), Price: Money{Amount: 50_00, Currency: "usd"}} // 0.909 cents
)

// Hand-computed: gpt-4o input costs $2.50 per 1M tokens, $0.0025 per 1,000.
// At 60% margin and a cent a credit: $0.0025 / 0.4 = $0.00625 = 0.625 credits.
func TestPriceForMarginAndMargin(t *testing.T) {
	usd := func(perMillion int64, frac int64) Cost {
		return Cost{Currency: "usd", Micros: perMillion*1_000_000 + frac}
	}
	cases := []struct {
		name   string
		cost   Cost
		margin int64
		pack   CreditPack
		want   Credits // per 1,000 units
		back   int64   // the margin that price leaves at the pack, bps
	}{
		{"input at 60%", usd(2, 500_000), 6000, pack10, 625, 6000},
		{"output at 60%", usd(10, 0), 6000, pack10, 2500, 6000},
		// 0.3125 credits rounds up to 0.313: the margin is a little above 60%.
		{"cached at 60%, rounded up", usd(1, 250_000), 6000, pack10, 313, 6006},
		{"zero margin", usd(10, 0), 0, pack10, 1000, 0},
		// At the bigger pack a credit sells for less ($50 for 5,500): 0.6875 credits, rounded up.
		{"the same price at another pack", usd(2, 500_000), 6000, pack50, 688, 6002},
	}
	for _, c := range cases {
		got, err := PriceForMargin(c.cost, c.margin, 1000, c.pack)
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
			continue
		}
		if m, ok := Margin(&c.cost, got, 1000, c.pack); !ok || m != c.back {
			t.Errorf("%s: margin %d (%v), want %d", c.name, m, ok, c.back)
		}
	}
	in := usd(2, 500_000)
	if m, _ := Margin(&in, 625, 1000, pack50); m != 5600 {
		t.Errorf("0.625 credits at the 5,500 pack: margin %d, want 5600", m)
	}
	if m, _ := Margin(&in, 200, 1000, pack10); m != -2500 {
		t.Errorf("below cost: margin %d, want -2500 (-25%%)", m)
	}
	if _, ok := Margin(nil, 625, 1000, pack10); ok {
		t.Error("a margin without a cost")
	}
	eur := Cost{Currency: "eur", Micros: 1}
	if _, err := PriceForMargin(eur, 6000, 1000, pack10); ErrorCode(err) != CodeValidation {
		t.Errorf("another currency: %v", err)
	}
	if _, err := PriceForMargin(in, 10_000, 1000, pack10); ErrorCode(err) != CodeValidation {
		t.Errorf("a 100%% margin: %v", err)
	}
	if MarginText(6006) != "60.0%" || MarginText(-2500) != "-25.0%" || MarginText(5675) != "56.7%" {
		t.Errorf("MarginText: %s %s %s", MarginText(6006), MarginText(-2500), MarginText(5675))
	}
}

func TestCostJSON(t *testing.T) {
	var c Cost
	if err := json.Unmarshal([]byte(`{"currency":"USD","per_million":2.5}`), &c); err != nil || c.Micros != 2_500_000 || c.Currency != "usd" {
		t.Fatalf("%+v %v", c, err)
	}
	b, _ := json.Marshal(c)
	if string(b) != `{"currency":"usd","per_million":2.5}` {
		t.Errorf("marshal %s", b)
	}
	for _, bad := range []string{`{"currency":"usd","per_million":0.0000001}`, `{"currency":"usd","per_million":-1}`, `{"currency":"usd","per_million":"x"}`} {
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestImportProviderCosts(t *testing.T) {
	f, err := os.Open("testdata/litellm_small.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prices, err := ReadProviderPrices(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := prices["sample_spec"]; ok {
		t.Error("sample_spec read as a model")
	}
	existing := []Feature{{Key: "chat.request", Credits: CreditsOf(1), UnitSize: 1}, {Key: "gpt-4o", Name: "GPT-4o (ours)", Credits: 0,
		Dimensions: []Dimension{{Key: "input_tokens", Credits: 1, UnitSize: 1000}}}}
	out, err := ImportProviderCosts(existing, prices, ImportRequest{Models: []string{"gpt-4o", "claude-3-5-sonnet-20241022", "openai/gpt-4o-mini"}, MarginBps: 6000, Pack: pack10})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 || len(existing[1].Dimensions) != 1 {
		t.Fatalf("%d features (want 4); the input was changed: %v", len(out), existing[1])
	}
	g := out[1]
	if g.Key != "gpt-4o" || g.Name != "GPT-4o (ours)" || len(g.Dimensions) != 3 {
		t.Fatalf("gpt-4o updated: %+v", g)
	}
	want := map[string]Credits{"input_tokens": 625, "cached_input_tokens": 313, "output_tokens": 2500}
	for _, d := range g.Dimensions {
		if d.Credits != want[d.Key] || d.UnitSize != 1000 || d.Cost == nil {
			t.Errorf("gpt-4o %s: %v per %d (cost %v), want %v", d.Key, d.Credits, d.UnitSize, d.Cost, want[d.Key])
		}
	}
	// Claude: $3 / $15 / $0.30 per 1M -> 0.75 / 3.75 / 0.075 credits per 1,000 at 60%.
	c := out[2]
	if c.Key != "claude-3-5-sonnet-20241022" || c.Dimensions[0].Credits != 750 || c.Dimensions[1].Credits != 75 || c.Dimensions[2].Credits != 3750 {
		t.Errorf("claude: %+v", c)
	}
	if m := out[3]; m.Key != "openai:gpt-4o-mini" || len(m.Dimensions) != 2 {
		t.Errorf("mini: %+v", m)
	}
	pb := PriceBook{Currency: "usd", Features: out}
	if err := pb.Validate(); err != nil {
		t.Errorf("the imported features do not validate: %v", err)
	}
	if _, err := ImportProviderCosts(nil, prices, ImportRequest{Models: []string{"dall-e-3"}, MarginBps: 6000, Pack: pack10}); ErrorCode(err) != CodeValidation {
		t.Errorf("an image model: %v", err)
	}
	if _, err := ImportProviderCosts(nil, prices, ImportRequest{Models: []string{"gpt-5-turbo"}, MarginBps: 6000, Pack: pack10}); ErrorCode(err) != CodeValidation {
		t.Errorf("a model not in the file: %v", err)
	}
}
