package billing

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Cost basis and margin. An AI product pays its model provider per token (or
// image, or second); a feature (or each of its dimensions) may carry that
// cost, and the price-book editor shows the margin each price leaves at the
// credit price of each pack. Costs never touch a balance; they are exact
// decimals all the same (big.Rat), never floats.

// Cost is what a feature's unit costs the product: Micros millionths of
// the currency's major unit (USD 0.000001) per million units. "$2.50 per 1M
// input tokens" is {"currency": "usd", "per_million": 2.5}, Micros 2,500,000.
type Cost struct {
	Currency string `json:"currency"`
	Micros   int64  `json:"-"`
}

// maxCostMicros bounds a cost: 1,000,000,000 major units per million units.
const maxCostMicros = 1_000_000_000 * 1_000_000

type costJSON struct {
	Currency   string          `json:"currency"`
	PerMillion json.RawMessage `json:"per_million"`
}

// MarshalJSON writes per_million as a decimal number of major units.
func (c Cost) MarshalJSON() ([]byte, error) {
	r := new(big.Rat).SetFrac64(c.Micros, 1_000_000)
	s := strings.TrimRight(strings.TrimRight(r.FloatString(6), "0"), ".")
	return json.Marshal(costJSON{Currency: c.Currency, PerMillion: json.RawMessage(s)})
}

// UnmarshalJSON reads per_million exactly (at most 6 decimals).
func (c *Cost) UnmarshalJSON(b []byte) error {
	var in costJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	m, err := parseMicros(strings.Trim(string(in.PerMillion), `"`))
	if err != nil {
		return Errorf(CodeValidation, "cost per_million: %s", ErrorMessage(err))
	}
	c.Currency, c.Micros = strings.ToLower(strings.TrimSpace(in.Currency)), m
	return nil
}

// parseMicros reads a decimal (an exponent allowed, as providers write
// 2.5e-06) as millionths, refusing what does not fit exactly.
func parseMicros(s string) (int64, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok || len(s) > 40 {
		return 0, Errorf(CodeValidation, "%q is not a number", s)
	}
	r.Mul(r, big.NewRat(1_000_000, 1))
	if !r.IsInt() {
		return 0, Errorf(CodeValidation, "%s has more than 6 decimals", s)
	}
	if r.Sign() < 0 || r.Num().Cmp(big.NewInt(maxCostMicros)) > 0 {
		return 0, Errorf(CodeValidation, "%s is out of range (0 to 1,000,000,000)", s)
	}
	return r.Num().Int64(), nil
}

func (c *Cost) validate(where string, currency string) error {
	if c == nil {
		return nil
	}
	if c.Currency == "" {
		c.Currency = currency
	}
	if !isCurrency(c.Currency) {
		return Errorf(CodeValidation, "%s: cost currency %q is not an ISO 4217 code", where, c.Currency)
	}
	if c.Micros < 0 || c.Micros > maxCostMicros {
		return Errorf(CodeValidation, "%s: cost per_million is out of range", where)
	}
	return nil
}

// creditPrice is what one credit sells for in a pack, in millionths of the
// major unit: the pack's price over its credits.
func creditPrice(p CreditPack) (*big.Rat, bool) {
	if p.Credits <= 0 || p.Price.Amount <= 0 {
		return nil, false
	}
	minor := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(MinorUnits(p.Price.Currency))), nil)
	micros := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(p.Price.Amount), big.NewInt(1_000_000)), minor)
	// Per credit: Credits is in millicredits.
	return micros.Quo(micros, new(big.Rat).SetFrac64(int64(p.Credits), Milli)), true
}

// Margin is the share of revenue left after cost when credits per unitSize
// units are sold at pack's credit price, in basis points (6,000 = 60%),
// rounded toward zero; negative when the price is below cost. ok is false
// when there is nothing to compare: no cost, another currency, a free price.
func Margin(cost *Cost, credits Credits, unitSize int64, pack CreditPack) (bps int64, ok bool) {
	if cost == nil || cost.Currency != pack.Price.Currency || credits <= 0 {
		return 0, false
	}
	price, ok := creditPrice(pack)
	if !ok {
		return 0, false
	}
	if unitSize <= 0 {
		unitSize = 1
	}
	// Revenue per million units, in millionths of the major unit.
	rev := new(big.Rat).SetFrac64(int64(credits)*1_000_000, unitSize*Milli)
	rev.Mul(rev, price)
	m := new(big.Rat).Sub(rev, new(big.Rat).SetInt64(cost.Micros))
	m.Quo(m, rev).Mul(m, big.NewRat(10_000, 1))
	q := new(big.Int).Quo(m.Num(), m.Denom())
	return q.Int64(), true
}

// PriceForMargin is the price in credits per unitSize units that leaves at
// least marginBps of margin at pack's credit price, rounded up to the
// millicredit (so the margin is never below the target). Errors:
// validation_failed (a margin outside 0-99.99%, another currency, a pack
// without a price).
func PriceForMargin(cost Cost, marginBps int64, unitSize int64, pack CreditPack) (Credits, error) {
	if marginBps < 0 || marginBps >= 10_000 {
		return 0, Errorf(CodeValidation, "margin must be at least 0%% and below 100%%")
	}
	if cost.Currency != pack.Price.Currency {
		return 0, Errorf(CodeValidation, "the cost is in %s but pack %q is priced in %s", cost.Currency, pack.ID, pack.Price.Currency)
	}
	price, ok := creditPrice(pack)
	if !ok {
		return 0, Errorf(CodeValidation, "pack %q has no price to set a margin against", pack.ID)
	}
	if unitSize <= 0 {
		unitSize = 1
	}
	// credits per unitSize units = cost per unit / (1 - margin) / credit price * unitSize.
	r := new(big.Rat).SetFrac64(cost.Micros*unitSize, 1_000_000)
	r.Quo(r, new(big.Rat).SetFrac64(10_000-marginBps, 10_000))
	r.Quo(r, price)
	r.Mul(r, big.NewRat(Milli, 1)) // to millicredits
	c := new(big.Int).Quo(r.Num(), r.Denom())
	if new(big.Rat).SetInt(c).Cmp(r) < 0 {
		c.Add(c, big.NewInt(1))
	}
	if !c.IsInt64() || c.Int64() > int64(MaxCredits) {
		return 0, Errorf(CodeValidation, "the price for this cost and margin is beyond %s credits", maxCreditsText)
	}
	return Credits(c.Int64()), nil
}

// ProviderModel is one model's prices in the layout of LiteLLM's
// model_prices_and_context_window.json: cost per token in USD.
type ProviderModel struct {
	Provider        string      `json:"litellm_provider"`
	Mode            string      `json:"mode"`
	InputPerToken   json.Number `json:"input_cost_per_token"`
	OutputPerToken  json.Number `json:"output_cost_per_token"`
	CachedPerToken  json.Number `json:"cache_read_input_token_cost"`
	OutputPerImage  json.Number `json:"output_cost_per_image"`
	InputPerSecond  json.Number `json:"input_cost_per_second"`
	OutputPerSecond json.Number `json:"output_cost_per_second"`
}

// ReadProviderPrices reads a file in LiteLLM's layout: an object of model
// name to prices (its "sample_spec" entry is skipped).
func ReadProviderPrices(r io.Reader) (map[string]ProviderModel, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(io.LimitReader(r, 64<<20))
	if err := dec.Decode(&raw); err != nil {
		return nil, Errorf(CodeValidation, "provider prices: not a JSON object of model prices: %v", err)
	}
	out := make(map[string]ProviderModel, len(raw))
	for name, b := range raw {
		if name == "sample_spec" {
			continue
		}
		var m ProviderModel
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			continue // an entry of another shape: not a model we can price
		}
		out[name] = m
	}
	return out, nil
}

// ImportRequest prices provider models as features: each named model (a
// key of the file) becomes a feature keyed by its name, priced per 1,000
// tokens per dimension (input, cached input, output) at MarginBps of margin
// at Pack's credit price, with the cost kept beside each price.
type ImportRequest struct {
	Models    []string
	MarginBps int64
	Pack      CreditPack
}

var featureKeyUnsafe = regexp.MustCompile(`[^a-z0-9._:-]+`)

// ModelFeatureKey is the feature key a provider model gets: lower case,
// "/" as ":", other characters as "-".
func ModelFeatureKey(model string) string {
	k := strings.ReplaceAll(strings.ToLower(model), "/", ":")
	k = strings.Trim(featureKeyUnsafe.ReplaceAllString(k, "-"), "-.:")
	if len(k) > 64 {
		k = k[:64]
	}
	return k
}

// ImportProviderCosts adds or updates one feature per requested model in
// features (a feature of the same key keeps its name and description; its
// dimensions are replaced) and returns the new list. A model missing from
// the file, or without token prices, is an error naming it.
func ImportProviderCosts(features []Feature, prices map[string]ProviderModel, req ImportRequest) ([]Feature, error) {
	if len(req.Models) == 0 {
		return nil, Errorf(CodeValidation, "name the models to import")
	}
	out := slices.Clone(features)
	for _, model := range req.Models {
		m, ok := prices[model]
		if !ok {
			return nil, Errorf(CodeValidation, "model %q is not in the provider prices", model).With("param", "models")
		}
		dims := []struct {
			key, unit string
			per       json.Number
		}{{"input_tokens", "input token", m.InputPerToken}, {"cached_input_tokens", "cached input token", m.CachedPerToken},
			{"output_tokens", "output token", m.OutputPerToken}}
		f := Feature{Key: ModelFeatureKey(model), Name: model, Unit: "call"}
		for _, d := range dims {
			if d.per == "" {
				continue
			}
			perToken, err := parseRat(string(d.per))
			if err != nil {
				return nil, Errorf(CodeValidation, "model %q: %s %s", model, d.key, err)
			}
			// Per million tokens, in millionths of a dollar: per token * 10^12.
			micros := perToken.Mul(perToken, big.NewRat(1_000_000_000_000, 1))
			if !micros.IsInt() {
				micros.SetInt(new(big.Int).Quo(new(big.Int).Add(micros.Num(), new(big.Int).Sub(micros.Denom(), big.NewInt(1))), micros.Denom()))
			}
			cost := Cost{Currency: "usd", Micros: micros.Num().Int64()}
			credits, err := PriceForMargin(cost, req.MarginBps, 1000, req.Pack)
			if err != nil {
				return nil, err
			}
			f.Dimensions = append(f.Dimensions, Dimension{Key: d.key, Unit: d.unit, Credits: credits, UnitSize: 1000, Cost: &cost})
		}
		if len(f.Dimensions) == 0 {
			return nil, Errorf(CodeValidation, "model %q has no token prices (mode %q); price it by hand", model, m.Mode).With("param", "models")
		}
		if i := slices.IndexFunc(out, func(g Feature) bool { return g.Key == f.Key }); i >= 0 {
			f.Name, f.Description = out[i].Name, out[i].Description
			out[i] = f
		} else {
			out = append(out, f)
		}
	}
	return out, nil
}

func parseRat(s string) (*big.Rat, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok || r.Sign() < 0 || len(s) > 40 {
		return nil, fmt.Errorf("%q is not a price", s)
	}
	return r, nil
}

// MarginText writes basis points as a percentage with one decimal: "60.0%".
func MarginText(bps int64) string {
	sign := ""
	if bps < 0 {
		sign, bps = "-", -bps
	}
	return sign + strconv.FormatInt(bps/100, 10) + "." + strconv.FormatInt(bps%100/10, 10) + "%"
}
