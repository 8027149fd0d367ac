package billing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestUsageRequestValidate(t *testing.T) {
	q := func(v Quantity) *Quantity { return &v }
	meta := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		modify func(r *UsageRequest)
		code   string // "" when valid
	}{
		{"valid", func(r *UsageRequest) {}, ""},
		{"fractional quantity", func(r *UsageRequest) { r.Quantity = q(1) }, ""},
		{"largest quantity", func(r *UsageRequest) { r.Quantity = q(MaxQuantity) }, ""},
		{"no metadata", func(r *UsageRequest) { r.Metadata = nil }, ""},
		{"twenty metadata keys", func(r *UsageRequest) { r.Metadata = meta(20) }, ""},
		{"40-byte metadata key", func(r *UsageRequest) { r.Metadata = map[string]string{strings.Repeat("k", 40): "v"} }, ""},
		{"500-byte metadata value", func(r *UsageRequest) { r.Metadata = map[string]string{"k": strings.Repeat("v", 500)} }, ""},
		{"empty metadata value", func(r *UsageRequest) { r.Metadata = map[string]string{"k": ""} }, ""},
		{"unicode metadata", func(r *UsageRequest) { r.Metadata = map[string]string{"projet": "équipe ✓"} }, ""},
		{"missing customer", func(r *UsageRequest) { r.Customer = "" }, CodeValidation},
		{"missing feature", func(r *UsageRequest) { r.Feature = "" }, CodeUnknownFeature},
		{"missing quantity", func(r *UsageRequest) { r.Quantity = nil }, CodeInvalidQuantity},
		{"zero quantity", func(r *UsageRequest) { r.Quantity = q(0) }, CodeInvalidQuantity},
		{"negative quantity", func(r *UsageRequest) { r.Quantity = q(-1000) }, CodeInvalidQuantity},
		{"quantity beyond the maximum", func(r *UsageRequest) { r.Quantity = q(MaxQuantity + 1) }, CodeInvalidQuantity},
		{"idempotency key with a space", func(r *UsageRequest) { r.IdempotencyKey = "a b" }, CodeInvalidRequest},
		{"21 metadata keys", func(r *UsageRequest) { r.Metadata = meta(21) }, CodeValidation},
		{"empty metadata key", func(r *UsageRequest) { r.Metadata = map[string]string{"": "v"} }, CodeValidation},
		{"41-character metadata key", func(r *UsageRequest) { r.Metadata = map[string]string{strings.Repeat("k", 41): "v"} }, CodeValidation},
		{"501-character metadata value", func(r *UsageRequest) { r.Metadata = map[string]string{"k": strings.Repeat("v", 501)} }, CodeValidation},
		{"40 accented letters in a key (80 bytes)", func(r *UsageRequest) { r.Metadata = map[string]string{strings.Repeat("é", 40): "v"} }, ""},
		{"500 accented letters in a value", func(r *UsageRequest) { r.Metadata = map[string]string{"k": strings.Repeat("é", 500)} }, ""},
		{"control character in a value", func(r *UsageRequest) { r.Metadata = map[string]string{"k": "a\nb"} }, CodeValidation},
		{"control character in a key", func(r *UsageRequest) { r.Metadata = map[string]string{"k\x00": "v"} }, CodeValidation},
		{"invalid UTF-8 value", func(r *UsageRequest) { r.Metadata = map[string]string{"k": "\xff"} }, CodeValidation},
		{"invalid UTF-8 key", func(r *UsageRequest) { r.Metadata = map[string]string{"\xfe": "v"} }, CodeValidation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := UsageRequest{Customer: "cus_1", Feature: "chat.request", Quantity: q(QuantityOf(1)),
				IdempotencyKey: "req-1", Metadata: map[string]string{"user": "u_42"}}
			tc.modify(&r)
			err := r.Validate()
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantCode(t, err, tc.code)
		})
	}
}

func TestUsageRequestFromJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		code string // of Unmarshal, else of Validate; "" when valid
	}{
		{"valid", `{"customer":"c","feature":"f","quantity":1.5}`, ""},
		{"exponent quantity", `{"customer":"c","feature":"f","quantity":1e3}`, ""},
		{"missing quantity", `{"customer":"c","feature":"f"}`, CodeInvalidQuantity},
		{"null quantity", `{"customer":"c","feature":"f","quantity":null}`, CodeInvalidQuantity},
		{"zero quantity", `{"customer":"c","feature":"f","quantity":0}`, CodeInvalidQuantity},
		{"string quantity", `{"customer":"c","feature":"f","quantity":"1"}`, CodeInvalidRequest},
		{"four decimals", `{"customer":"c","feature":"f","quantity":0.0001}`, CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r UsageRequest
			err := json.Unmarshal([]byte(tc.body), &r)
			if err == nil {
				err = r.Validate()
			}
			if tc.code == "" {
				if err != nil {
					t.Fatalf("%s: %v", tc.body, err)
				}
				return
			}
			wantCode(t, err, tc.code)
		})
	}
}

func TestCaptureRequestValidate(t *testing.T) {
	q := QuantityOf(3)
	ok := CaptureRequest{Feature: "image.generate", Quantity: &q}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	wantCode(t, (&CaptureRequest{Feature: "image.generate"}).Validate(), CodeInvalidQuantity)
	wantCode(t, (&CaptureRequest{Quantity: &q}).Validate(), CodeUnknownFeature)
	wantCode(t, (&CaptureRequest{Feature: "f", Quantity: &q, Metadata: map[string]string{"": ""}}).Validate(), CodeValidation)
}

func TestUsageRequestHash(t *testing.T) {
	base := func() UsageRequest {
		q := mustParseQuantity(t, "1.5")
		return UsageRequest{Customer: "ext_1", Feature: "chat.request", Quantity: &q, IdempotencyKey: "k1",
			Metadata: map[string]string{"user": "u1", "project": "p1", "team": "t1"}}
	}
	want := func() []byte { r := base(); return r.Hash("cus_1") }()

	t.Run("equal requests", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			modify func(r *UsageRequest)
		}{
			{"same request", func(r *UsageRequest) {}},
			{"metadata built in another order", func(r *UsageRequest) {
				m := map[string]string{}
				for _, k := range []string{"team", "project", "user"} {
					m[k] = base().Metadata[k]
				}
				r.Metadata = m
			}},
			{"customer named by another reference", func(r *UsageRequest) { r.Customer = "cus_1" }},
			{"idempotency key is not part of the body", func(r *UsageRequest) { r.IdempotencyKey = "k2" }},
			{"API key is not part of the body", func(r *UsageRequest) { r.APIKey = &APIKey{ID: "key_2"} }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := base()
				tc.modify(&r)
				for range 20 { // map iteration order varies between calls
					if got := r.Hash("cus_1"); !bytes.Equal(got, want) {
						t.Fatalf("hash %x, want %x", got, want)
					}
				}
			})
		}
	})

	for _, tc := range []struct {
		name     string
		customer string
		modify   func(r *UsageRequest)
	}{
		{"customer", "cus_2", func(r *UsageRequest) {}},
		{"feature", "cus_1", func(r *UsageRequest) { r.Feature = "image.generate" }},
		{"quantity", "cus_1", func(r *UsageRequest) { q := *r.Quantity + 1; r.Quantity = &q }},
		{"metadata value", "cus_1", func(r *UsageRequest) { r.Metadata["user"] = "u2" }},
		{"metadata key", "cus_1", func(r *UsageRequest) { r.Metadata["owner"] = r.Metadata["user"]; delete(r.Metadata, "user") }},
		{"extra metadata", "cus_1", func(r *UsageRequest) { r.Metadata["x"] = "" }},
		{"no metadata", "cus_1", func(r *UsageRequest) { r.Metadata = nil }},
		{"boundary between key and value", "cus_1", func(r *UsageRequest) { r.Metadata["user"] = ""; r.Metadata["useru1"] = "" }},
	} {
		t.Run("differs by "+tc.name, func(t *testing.T) {
			r := base()
			tc.modify(&r)
			if got := r.Hash(tc.customer); bytes.Equal(got, want) {
				t.Fatalf("hash unchanged: %x", got)
			}
		})
	}

	t.Run("length prefixes keep fields apart", func(t *testing.T) {
		q := QuantityOf(1)
		a := UsageRequest{Feature: "b", Quantity: &q}
		b := UsageRequest{Feature: "", Quantity: &q}
		if bytes.Equal(a.Hash("a"), b.Hash("ab")) {
			t.Fatal("customer a + feature b hashes like customer ab")
		}
		m1 := UsageRequest{Feature: "f", Quantity: &q, Metadata: map[string]string{"a": "bc"}}
		m2 := UsageRequest{Feature: "f", Quantity: &q, Metadata: map[string]string{"ab": "c"}}
		if bytes.Equal(m1.Hash("c"), m2.Hash("c")) {
			t.Fatal("metadata a=bc hashes like ab=c")
		}
	})
	t.Run("kinds differ", func(t *testing.T) {
		q := QuantityOf(1)
		u := UsageRequest{Feature: "f", Quantity: &q}
		c := CaptureRequest{Feature: "f", Quantity: &q}
		if bytes.Equal(u.Hash("x"), c.Hash("x")) {
			t.Fatal("a usage request hashes like a capture of the same fields")
		}
	})
}

func TestCaptureRequestHash(t *testing.T) {
	q := QuantityOf(2)
	base := CaptureRequest{Feature: "f", Quantity: &q, Metadata: map[string]string{"a": "1"}, IdempotencyKey: "k"}
	want := base.Hash("hold_1")
	same := base
	same.IdempotencyKey = "other"
	if !bytes.Equal(same.Hash("hold_1"), want) {
		t.Error("idempotency key changed the capture hash")
	}
	q2 := QuantityOf(3)
	for name, got := range map[string][]byte{
		"hold":     base.Hash("hold_2"),
		"feature":  (&CaptureRequest{Feature: "g", Quantity: &q, Metadata: base.Metadata}).Hash("hold_1"),
		"quantity": (&CaptureRequest{Feature: "f", Quantity: &q2, Metadata: base.Metadata}).Hash("hold_1"),
		"metadata": (&CaptureRequest{Feature: "f", Quantity: &q}).Hash("hold_1"),
	} {
		if bytes.Equal(got, want) {
			t.Errorf("capture hash unchanged by %s", name)
		}
	}
}

func TestGrantRequestValidate(t *testing.T) {
	now := t0
	p := func(v int) *int { return &v }
	for _, tc := range []struct {
		name   string
		modify func(r *GrantRequest)
		param  string // "" when valid
		code   string
	}{
		{"valid", func(r *GrantRequest) {}, "", ""},
		{"every source", func(r *GrantRequest) { r.Source = SourceSubscription }, "", ""},
		{"priority bounds", func(r *GrantRequest) { r.Priority = p(1000) }, "", ""},
		{"priority zero", func(r *GrantRequest) { r.Priority = p(0) }, "", ""},
		{"no expiry", func(r *GrantRequest) { r.ExpiresAt = nil }, "", ""},
		{"largest grant", func(r *GrantRequest) { r.Credits = MaxCredits }, "", ""},
		{"missing customer", func(r *GrantRequest) { r.Customer = "" }, "customer", CodeValidation},
		{"zero credits", func(r *GrantRequest) { r.Credits = 0 }, "credits", CodeValidation},
		{"negative credits", func(r *GrantRequest) { r.Credits = -1 }, "credits", CodeValidation},
		{"credits beyond the maximum", func(r *GrantRequest) { r.Credits = MaxCredits + 1 }, "credits", CodeValidation},
		{"missing source", func(r *GrantRequest) { r.Source = "" }, "source", CodeValidation},
		{"unknown source", func(r *GrantRequest) { r.Source = "gift" }, "source", CodeValidation},
		{"reason too long", func(r *GrantRequest) { r.Reason = strings.Repeat("r", 501) }, "reason", CodeValidation},
		{"reason with control character", func(r *GrantRequest) { r.Reason = "a\tb" }, "reason", CodeValidation},
		{"negative priority", func(r *GrantRequest) { r.Priority = p(-1) }, "priority", CodeValidation},
		{"priority beyond 1000", func(r *GrantRequest) { r.Priority = p(1001) }, "priority", CodeValidation},
		{"expires now", func(r *GrantRequest) { r.ExpiresAt = &now }, "expires_at", CodeValidation},
		{"expired", func(r *GrantRequest) { r.ExpiresAt = at(-time.Hour) }, "expires_at", CodeValidation},
		{"bad idempotency key", func(r *GrantRequest) { r.IdempotencyKey = "é" }, "idempotency_key", CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := GrantRequest{Customer: "cus_1", Credits: CreditsOf(100), Source: SourcePromo, Reason: "welcome",
				ExpiresAt: at(24 * time.Hour), IdempotencyKey: "g-1"}
			tc.modify(&r)
			err := r.Validate()
			if err == nil {
				err = r.CheckExpiry(now)
			}
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantCode(t, err, tc.code)
			if got := err.(*Error).Details["param"]; got != tc.param {
				t.Fatalf("param %v, want %s", got, tc.param)
			}
		})
	}
}

func TestGrantRequestEffectivePriority(t *testing.T) {
	for source, want := range DefaultPriority {
		r := GrantRequest{Source: source}
		if got := r.EffectivePriority(); got != want {
			t.Errorf("%s: priority %d, want %d", source, got, want)
		}
	}
	p := 7
	if got := (&GrantRequest{Source: SourcePurchase, Priority: &p}).EffectivePriority(); got != 7 {
		t.Errorf("explicit priority %d, want 7", got)
	}
	if !(DefaultPriority[SourcePromo] < DefaultPriority[SourceSubscription] &&
		DefaultPriority[SourceSubscription] < DefaultPriority[SourceAdjustment] &&
		DefaultPriority[SourceAdjustment] < DefaultPriority[SourcePurchase]) {
		t.Errorf("purchases must burn last: %v", DefaultPriority)
	}
}

func TestGrantRequestHash(t *testing.T) {
	base := func() GrantRequest {
		return GrantRequest{Customer: "ext", Credits: CreditsOf(100), Source: SourcePromo, Reason: "welcome",
			ExpiresAt: at(24 * time.Hour), RefundableUntil: at(48 * time.Hour), IdempotencyKey: "k"}
	}
	want := func() []byte { r := base(); return r.Hash("cus_1") }()
	p := func(v int) *int { return &v }
	for _, tc := range []struct {
		name   string
		modify func(r *GrantRequest)
	}{
		{"same request", func(r *GrantRequest) {}},
		{"explicit default priority", func(r *GrantRequest) { r.Priority = p(DefaultPriority[SourcePromo]) }},
		{"same instants in another zone", func(r *GrantRequest) {
			e, u := r.ExpiresAt.In(time.FixedZone("x", -5*3600)), r.RefundableUntil.In(time.FixedZone("y", 3600))
			r.ExpiresAt, r.RefundableUntil = &e, &u
		}},
		{"another idempotency key", func(r *GrantRequest) { r.IdempotencyKey = "k2" }},
		{"another customer reference", func(r *GrantRequest) { r.Customer = "cus_1" }},
	} {
		t.Run("equal: "+tc.name, func(t *testing.T) {
			r := base()
			tc.modify(&r)
			if got := r.Hash("cus_1"); !bytes.Equal(got, want) {
				t.Fatalf("hash %x, want %x", got, want)
			}
		})
	}
	for _, tc := range []struct {
		name     string
		customer string
		modify   func(r *GrantRequest)
	}{
		{"customer", "cus_2", func(r *GrantRequest) {}},
		{"credits", "cus_1", func(r *GrantRequest) { r.Credits++ }},
		{"source", "cus_1", func(r *GrantRequest) { r.Source = SourceAdjustment; r.Priority = p(DefaultPriority[SourcePromo]) }},
		{"reason", "cus_1", func(r *GrantRequest) { r.Reason = "welcome!" }},
		{"priority", "cus_1", func(r *GrantRequest) { r.Priority = p(11) }},
		{"expiry", "cus_1", func(r *GrantRequest) { r.ExpiresAt = at(25 * time.Hour) }},
		{"no expiry", "cus_1", func(r *GrantRequest) { r.ExpiresAt = nil }},
		{"refundable until", "cus_1", func(r *GrantRequest) { r.RefundableUntil = at(49 * time.Hour) }},
		{"expiry and refund window swapped", "cus_1", func(r *GrantRequest) { r.ExpiresAt, r.RefundableUntil = r.RefundableUntil, r.ExpiresAt }},
	} {
		t.Run("differs by "+tc.name, func(t *testing.T) {
			r := base()
			tc.modify(&r)
			if got := r.Hash(tc.customer); bytes.Equal(got, want) {
				t.Fatalf("hash unchanged: %x", got)
			}
		})
	}
}

func TestHoldRequestValidate(t *testing.T) {
	t.Run("default TTL", func(t *testing.T) {
		r := HoldRequest{Customer: "cus_1", Credits: CreditsOf(5)}
		if err := r.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if r.TTLSeconds != 600 {
			t.Fatalf("TTLSeconds = %d, want the default 600", r.TTLSeconds)
		}
	})
	for _, tc := range []struct {
		name   string
		modify func(r *HoldRequest)
		param  string // "" when valid
		code   string
	}{
		{"one second", func(r *HoldRequest) { r.TTLSeconds = 1 }, "", ""},
		{"a day", func(r *HoldRequest) { r.TTLSeconds = 86400 }, "", ""},
		{"largest hold", func(r *HoldRequest) { r.Credits = MaxCredits }, "", ""},
		{"missing customer", func(r *HoldRequest) { r.Customer = "" }, "customer", CodeValidation},
		{"zero credits", func(r *HoldRequest) { r.Credits = 0 }, "credits", CodeValidation},
		{"negative credits", func(r *HoldRequest) { r.Credits = -1 }, "credits", CodeValidation},
		{"credits beyond the maximum", func(r *HoldRequest) { r.Credits = MaxCredits + 1 }, "credits", CodeValidation},
		{"negative TTL", func(r *HoldRequest) { r.TTLSeconds = -1 }, "ttl_seconds", CodeValidation},
		{"TTL beyond a day", func(r *HoldRequest) { r.TTLSeconds = 86401 }, "ttl_seconds", CodeValidation},
		{"bad idempotency key", func(r *HoldRequest) { r.IdempotencyKey = "a\x7f" }, "idempotency_key", CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := HoldRequest{Customer: "cus_1", Credits: CreditsOf(5), TTLSeconds: 60}
			tc.modify(&r)
			err := r.Validate()
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantCode(t, err, tc.code)
			if got := err.(*Error).Details["param"]; got != tc.param {
				t.Fatalf("param %v, want %s", got, tc.param)
			}
		})
	}
}

func TestHoldRequestHash(t *testing.T) {
	base := HoldRequest{Customer: "ext", Credits: CreditsOf(5), TTLSeconds: 60, IdempotencyKey: "k"}
	want := base.Hash("cus_1")
	same := base
	same.Customer, same.IdempotencyKey = "cus_1", "k2"
	if !bytes.Equal(same.Hash("cus_1"), want) {
		t.Error("customer reference or idempotency key changed the hold hash")
	}
	for name, r := range map[string]HoldRequest{
		"credits": {Credits: CreditsOf(5) + 1, TTLSeconds: 60},
		"ttl":     {Credits: CreditsOf(5), TTLSeconds: 61},
	} {
		if bytes.Equal(r.Hash("cus_1"), want) {
			t.Errorf("hold hash unchanged by %s", name)
		}
	}
	if bytes.Equal(base.Hash("cus_2"), want) {
		t.Error("hold hash unchanged by customer")
	}
}

func TestCheckIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		ok   bool
	}{
		{"empty means none", "", true},
		{"uuid", "3f2b8c1e-7d4a-4e2b-9c1f-0a5b6d7e8f90", true},
		{"printable punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", true},
		{"255 characters", strings.Repeat("k", 255), true},
		{"256 characters", strings.Repeat("k", 256), false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\n", false},
		{"NUL", "a\x00", false},
		{"DEL", "a\x7f", false},
		{"non-ASCII", "clé", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckIdempotencyKey(tc.key)
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckIdempotencyKey: %v", err)
				}
				return
			}
			wantCode(t, err, CodeInvalidRequest)
		})
	}
}

func TestCustomerInputValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    CustomerInput
		param string // "" when valid
	}{
		{"valid", CustomerInput{ExternalID: "user_42", Email: "ada@example.com", Name: "Ada"}, ""},
		{"trims the e-mail", CustomerInput{ExternalID: "user_42", Email: " ada@example.com "}, ""},
		// The customer is found by the id exactly: trimmed here, "  user_42 "
		// sent to /usage found no one.
		{"external id with spaces around", CustomerInput{ExternalID: "  user_42 "}, "external_id"},
		{"no email", CustomerInput{ExternalID: "user_42"}, ""},
		{"missing external id", CustomerInput{ExternalID: "  "}, "external_id"},
		{"Tally's prefix", CustomerInput{ExternalID: "cus_123"}, "external_id"},
		{"external id too long", CustomerInput{ExternalID: strings.Repeat("x", 256)}, "external_id"},
		{"external id with control character", CustomerInput{ExternalID: "a\x01b"}, "external_id"},
		{"bad email", CustomerInput{ExternalID: "u", Email: "not an email"}, "email"},
		{"email with display name", CustomerInput{ExternalID: "u", Email: "Ada <ada@example.com>"}, "email"},
		{"name too long", CustomerInput{ExternalID: "u", Name: strings.Repeat("n", 201)}, "name"},
		// Lengths are in characters, as the docs say: 200 accented letters
		// are 400 bytes and were refused.
		{"200 accented letters", CustomerInput{ExternalID: "u", Name: strings.Repeat("é", 200)}, ""},
		{"201 accented letters", CustomerInput{ExternalID: "u", Name: strings.Repeat("é", 201)}, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			err := in.Validate()
			if tc.param == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if in.ExternalID != strings.TrimSpace(tc.in.ExternalID) || in.Email != strings.TrimSpace(tc.in.Email) {
					t.Fatalf("not trimmed: %+v", in)
				}
				return
			}
			wantCode(t, err, CodeValidation)
			if got := err.(*Error).Details["param"]; got != tc.param {
				t.Fatalf("param %v, want %s", got, tc.param)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	for _, tc := range []struct {
		have, needs string
		want        bool
	}{
		{ScopeAdmin, ScopeAdmin, true},
		{ScopeAdmin, ScopeRead, true},
		{ScopeMetering, ScopeMetering, true},
		{ScopeMetering, ScopeAdmin, false},
		{ScopeRead, ScopeMetering, false},
		{ScopeRead, ScopeRead, true},
		{ScopeAdmin, ScopePortal, true},
		{ScopePortal, ScopePortal, true},
		{ScopePortal, ScopeRead, true},
		{ScopePortal, ScopeMetering, false},
		{ScopePortal, ScopeAdmin, false},
		{ScopeMetering, ScopePortal, false}, // the metering key cannot move money
		{ScopeRead, ScopePortal, false},
		{"", ScopeRead, false},
		{ScopeAdmin, "", false},
		{"root", ScopeAdmin, false},
	} {
		t.Run(tc.have+" needs "+tc.needs, func(t *testing.T) {
			if got := Allows(tc.have, tc.needs); got != tc.want {
				t.Fatalf("Allows(%q, %q) = %v, want %v", tc.have, tc.needs, got, tc.want)
			}
		})
	}
	for _, sc := range Scopes() {
		if !ValidScope(sc) || !Allows(ScopeAdmin, sc) || !Allows(sc, sc) {
			t.Errorf("scope %q: not valid, not its own or not included in admin", sc)
		}
	}
	if !ValidScope(ScopeMetering) || ValidScope("root") {
		t.Error("ValidScope")
	}
}
