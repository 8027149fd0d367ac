package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/payments"
)

// demoAPIKey is the fixed secret of the demo's admin key, so the README's
// curl examples work on every demo run. It exists only in databases seeded
// with --demo.
const demoAPIKey = "tsk_demo_local_only_do_not_deploy"

// DemoPriceBook is the price book the demo publishes: how AI products price today.
func DemoPriceBook() billing.PriceBook {
	return billing.PriceBook{
		Currency: "usd",
		Features: []billing.Feature{
			{Key: "chat.request", Name: "Chat request", Unit: "request", Credits: billing.CreditsOf(1), UnitSize: 1},
			{Key: "image.generate", Name: "Image generation", Unit: "image", Credits: billing.CreditsOf(5), UnitSize: 1},
			{Key: "document.analyze", Name: "Document analysis", Unit: "document", Credits: billing.CreditsOf(10), UnitSize: 1},
			{Key: "gpt-4o.tokens", Name: "GPT-4o tokens", Unit: "token", Credits: 2500, UnitSize: 1000},
			{Key: "audio.transcribe", Name: "Audio transcription", Unit: "second", Credits: 20, UnitSize: 1},
			// Priced per dimension, as the provider prices it, with its cost for the margin
			// ($2.50 / $1.25 / $10 per 1M tokens; 60% margin at the Starter pack).
			{Key: "gpt-4o", Name: "GPT-4o", Unit: "call", Dimensions: []billing.Dimension{
				{Key: "input_tokens", Unit: "input token", Credits: 625, UnitSize: 1000, Cost: &billing.Cost{Currency: "usd", Micros: 2_500_000}},
				{Key: "cached_input_tokens", Unit: "cached input token", Credits: 313, UnitSize: 1000, Cost: &billing.Cost{Currency: "usd", Micros: 1_250_000}},
				{Key: "output_tokens", Unit: "output token", Credits: 2500, UnitSize: 1000, Cost: &billing.Cost{Currency: "usd", Micros: 10_000_000}},
			}},
		},
		Packs: []billing.CreditPack{
			{ID: "pack_1000", Name: "Starter", Credits: billing.CreditsOf(1000), Price: billing.Money{Amount: 10_00, Currency: "usd"}},
			{ID: "pack_5500", Name: "Growth", Credits: billing.CreditsOf(5500), Price: billing.Money{Amount: 50_00, Currency: "usd"}},
			{ID: "pack_12000", Name: "Scale", Credits: billing.CreditsOf(12000), Price: billing.Money{Amount: 100_00, Currency: "usd"}},
		},
		Plans: []billing.Plan{
			{Key: "starter", Name: "Starter", Interval: billing.IntervalMonth, Price: billing.Money{Amount: 19_00, Currency: "usd"},
				Credits: billing.CreditsOf(2000), Rollover: billing.Rollover{Policy: billing.RolloverUpTo, Max: billing.CreditsOf(1000), Periods: 1}, Packs: true},
			{Key: "pro", Name: "Pro", Interval: billing.IntervalMonth, Price: billing.Money{Amount: 49_00, Currency: "usd"},
				Credits: billing.CreditsOf(6000), Rollover: billing.Rollover{Policy: billing.RolloverAll, Periods: 2}, Packs: true},
			{Key: "team", Name: "Team", Interval: billing.IntervalMonth, Price: billing.Money{Amount: 199_00, Currency: "usd"},
				Credits: billing.CreditsOf(30000), Rollover: billing.Rollover{Policy: billing.RolloverNone}, Packs: true},
		},
	}
}

// demoCustomer describes one demo customer's 90 days.
type demoCustomer struct {
	in       billing.CustomerInput
	perDay   int64 // average credits a day
	grants   []demoGrant
	users    []string
	features []string // weighted: repeated keys are more common
	target   int64    // credits to leave at the end (0: whatever is left)
	plan     string   // a plan the customer subscribes to in the sandbox ("": none)
}

type demoGrant struct {
	daysAgo  int
	credits  int64
	source   string
	reason   string
	expireIn int    // days after the grant; 0 = never
	pack     string // a purchase: the pack bought, paid in the sandbox (a top-up with its receipt)
}

func demoCustomers() []demoCustomer {
	return []demoCustomer{
		{ // well funded, heavy and steady usage
			in:     billing.CustomerInput{ExternalID: "acme-robotics", Email: "billing@acme-robotics.example", Name: "Acme Robotics"},
			perDay: 420,
			grants: []demoGrant{
				{90, 12000, billing.SourcePurchase, "Scale pack ($100.00)", 0, "pack_12000"},
				{90, 1000, billing.SourcePromo, "Welcome credits", 30, ""},
				{70, 12000, billing.SourcePurchase, "Scale pack ($100.00)", 0, "pack_12000"},
				{48, 12000, billing.SourcePurchase, "Scale pack ($100.00)", 0, "pack_12000"},
				{25, 12000, billing.SourcePurchase, "Scale pack ($100.00)", 0, "pack_12000"},
				{6, 12000, billing.SourcePurchase, "Scale pack ($100.00)", 0, "pack_12000"},
			},
			users:    []string{"maria", "dev-team", "batch-pipeline", "li.wei"},
			features: []string{"chat.request", "chat.request", "chat.request", "gpt-4o.tokens", "gpt-4o.tokens", "image.generate", "document.analyze"},
		},
		{ // nearly out of credits: the low-balance case
			in:     billing.CustomerInput{ExternalID: "lumen-studio", Email: "hello@lumen-studio.example", Name: "Lumen Studio"},
			perDay: 90,
			grants: []demoGrant{
				{88, 1000, billing.SourcePurchase, "Starter pack ($10.00)", 0, "pack_1000"},
				{88, 300, billing.SourcePromo, "Welcome credits", 14, ""},
				{75, 5500, billing.SourcePurchase, "Growth pack ($50.00)", 0, "pack_5500"},
				{21, 1000, billing.SourcePurchase, "Starter pack ($10.00)", 0, "pack_1000"},
			},
			users:    []string{"sam", "ola"},
			features: []string{"image.generate", "image.generate", "chat.request", "audio.transcribe"},
			target:   42,
		},
		{ // light usage, a monthly subscription allowance and promo credits expiring soon
			in:     billing.CustomerInput{ExternalID: "nova-labs", Email: "finance@nova-labs.example", Name: "Nova Labs"},
			perDay: 60,
			grants: []demoGrant{
				{89, 2000, billing.SourceSubscription, "Starter plan allowance (month 1)", 31, ""},
				{58, 2000, billing.SourceSubscription, "Starter plan allowance (month 2)", 31, ""},
				{40, 5500, billing.SourcePurchase, "Growth pack ($50.00)", 0, "pack_5500"},
				{27, 2000, billing.SourceSubscription, "Starter plan allowance (month 3)", 31, ""},
				{12, 500, billing.SourcePromo, "Conference promo", 24, ""},
			},
			plan:     "starter",
			users:    []string{"research", "support-bot", "ana"},
			features: []string{"document.analyze", "chat.request", "chat.request", "gpt-4o.tokens", "audio.transcribe", "gpt-4o"},
		},
	}
}

// demoActors says who did each item of the demo's history, as the audit
// log shows it: the usage came from the product app's key (the demo key),
// the grants from the demo itself. Paid top-ups name their payment.
func demoActors(items []db.BackfillItem, key *billing.APIKey) []db.BackfillItem {
	for _, it := range items {
		if it.Usage != nil {
			it.Usage.APIKey = key
		}
		if it.Grant != nil && it.Grant.Actor.Kind == "" {
			it.Grant.Actor = billing.SystemActor("demo")
		}
	}
	return items
}

// seedDemo publishes the demo price book, creates the demo customers with
// 90 days of usage and ensures the demo API key. It does nothing that is
// already done, so `serve --demo` can be run again on the same database.
func seedDemo(ctx context.Context, d *db.DB, out io.Writer, sandboxCards bool) (string, error) {
	if pb, err := d.CurrentPriceBook(ctx); err != nil {
		return "", err
	} else if pb == nil {
		if _, _, err := d.PublishPriceBook(ctx, DemoPriceBook()); err != nil {
			return "", err
		}
		fmt.Fprintln(out, "demo: published the demo price book (version 1)")
	} else if len(pb.Plans) == 0 {
		// A demo database from before plans: publish the book with them.
		nb, changed, err := d.PublishPriceBook(ctx, DemoPriceBook())
		if err != nil {
			return "", err
		}
		if changed {
			fmt.Fprintf(out, "demo: published the demo price book with plans (version %d)\n", nb.Version)
		}
	}
	key, err := d.EnsureAPIKey(ctx, "Demo key (local only)", billing.ScopeAdmin, demoAPIKey)
	if err != nil {
		return "", err
	}
	pb, err := d.CurrentPriceBook(ctx)
	if err != nil {
		return "", err
	}
	now := d.Now().UTC()
	// The customers' histories are written as one timeline, oldest first,
	// so the ledger's order (the audit log's) is the order of time.
	type ownedItem struct {
		db.BackfillItem
		owner int // the index in seeding of the item's customer
	}
	var seeding []demoCustomer
	var timeline []ownedItem
	for i, dc := range demoCustomers() {
		if _, err := d.ResolveCustomer(ctx, dc.in.ExternalID); err == nil {
			continue // seeded on an earlier run
		}
		if _, _, err := d.CreateCustomer(ctx, dc.in); err != nil {
			return "", err
		}
		for _, it := range demoActors(demoHistory(dc, pb, now, rand.New(rand.NewPCG(uint64(i+1), 42)), sandboxCards), &key) {
			timeline = append(timeline, ownedItem{it, len(seeding)})
		}
		seeding = append(seeding, dc)
	}
	if len(seeding) == 0 {
		return demoAPIKey, nil
	}
	slices.SortStableFunc(timeline, func(a, b ownedItem) int { return a.At.Compare(b.At) })
	fmt.Fprintf(out, "demo: writing %d ledger entries over 90 days for %d customers...", len(timeline), len(seeding))
	failed := make([]int, len(seeding))
	const chunk = 2000
	for start := 0; start < len(timeline); start += chunk {
		part := timeline[start:min(start+chunk, len(timeline))]
		items := make([]db.BackfillItem, len(part))
		for k, it := range part {
			items[k] = it.BackfillItem
		}
		for k, err := range d.Backfill(ctx, items) {
			if err == nil {
				continue
			}
			if billing.ErrorCode(err) != billing.CodeInsufficientCredits {
				return "", fmt.Errorf("%s: %w", seeding[part[k].owner].in.Name, err)
			}
			failed[part[k].owner]++
		}
		fmt.Fprintf(out, " %d%%", (start+len(part))*100/len(timeline))
	}
	fmt.Fprintln(out)
	for i, dc := range seeding {
		// The history's notifications (receipts, old low-balance warnings)
		// were read back then: only what happens from here on is new.
		if err := markDemoNotificationsRead(ctx, d, dc.in.ExternalID); err != nil {
			return "", err
		}
		if dc.target > 0 {
			if err := drainTo(ctx, d, dc, now, &key); err != nil {
				return "", err
			}
		}
		if dc.plan != "" {
			// The plan's first period starts now, paid in the sandbox.
			if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: dc.in.ExternalID, Plan: dc.plan,
				Actor: billing.SystemActor("demo")}); err != nil {
				return "", fmt.Errorf("%s: subscribe: %w", dc.in.Name, err)
			}
			// Its receipt was seen when the customer subscribed.
			if err := markDemoNotificationsRead(ctx, d, dc.in.ExternalID); err != nil {
				return "", err
			}
		}
		b, err := d.Balance(ctx, dc.in.ExternalID)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(out, "demo: %s: balance %s credits (%d usage events refused for lack of credits, as in real life)\n", dc.in.Name, b.Balance, failed[i])
		if sandboxCards && dc.in.ExternalID != "nova-labs" {
			// A saved sandbox test card (Visa 4242), so one-click top-ups work
			// at once; Nova Labs has none, to show adding a card.
			c, err := d.FindCustomer(ctx, dc.in.ExternalID)
			if err != nil {
				return "", err
			}
			if err := d.SaveProviderCustomer(ctx, c.ID, "sandbox", "cus_sandbox_demo_"+dc.in.ExternalID); err != nil {
				return "", err
			}
			if _, err := d.SaveCard(ctx, c.ID, "sandbox", billing.Card{ProviderID: "pm_sandbox_4242_demo" + strings.ReplaceAll(dc.in.ExternalID, "-", ""),
				Brand: "visa", Last4: "4242", ExpMonth: 12, ExpYear: now.Year() + 3}); err != nil {
				return "", err
			}
		}
	}
	return demoAPIKey, nil
}

// demoHistory makes a customer's grants and usage, in time order. With
// sandbox payments, a purchase is a top-up paid in the sandbox (revenue on
// the finance page, a receipt in the portal); otherwise a purchase grant.
func demoHistory(dc demoCustomer, pb *billing.PriceBook, now time.Time, r *rand.Rand, sandbox bool) []db.BackfillItem {
	start := now.Add(-90 * 24 * time.Hour)
	var items []db.BackfillItem
	for gi, g := range dc.grants {
		at := now.Add(-time.Duration(g.daysAgo)*24*time.Hour + time.Duration(gi)*time.Minute)
		if p, ok := pb.Pack(g.pack); ok && sandbox {
			items = append(items, db.BackfillItem{At: at, TopUp: &billing.TopUp{Customer: dc.in.ExternalID, Origin: billing.OriginPortal,
				PackID: p.ID, Description: payments.PackDescription(p), Credits: p.Total(), Price: p.Price,
				CardBrand: "visa", CardLast4: "4242"}, Policy: billing.PaymentPolicy{RefundWindow: 30 * 24 * time.Hour}})
			continue
		}
		req := &billing.GrantRequest{Customer: dc.in.ExternalID, Credits: billing.CreditsOf(g.credits), Source: g.source, Reason: g.reason}
		if g.expireIn > 0 {
			exp := at.Add(time.Duration(g.expireIn) * 24 * time.Hour)
			req.ExpiresAt = &exp
		}
		if g.source == billing.SourcePurchase {
			ref := at.Add(30 * 24 * time.Hour)
			req.RefundableUntil = &ref
		}
		items = append(items, db.BackfillItem{At: at, Grant: req})
	}
	var usage []db.BackfillItem
	for day := 0; day < 90; day++ {
		dayStart := start.Add(time.Duration(day) * 24 * time.Hour)
		// Weekdays are busier; usage grows a little over the quarter.
		budget := float64(dc.perDay) * (0.75 + 0.5*float64(day)/90)
		if wd := dayStart.Weekday(); wd == time.Saturday || wd == time.Sunday {
			budget *= 0.45
		}
		budget *= 0.7 + 0.6*r.Float64()
		spent := 0.0
		for spent < budget {
			fkey := dc.features[r.IntN(len(dc.features))]
			f, _ := pb.Feature(fkey)
			var q billing.Quantity
			if f.Dimensional() {
				// One call: its prompt, sometimes partly cached, and its answer.
				qs := billing.Quantities{"input_tokens": billing.QuantityOf(int64(300 + r.IntN(6000))), "output_tokens": billing.QuantityOf(int64(50 + r.IntN(1500)))}
				if r.IntN(3) == 0 {
					qs["cached_input_tokens"] = billing.QuantityOf(int64(r.IntN(4000)))
				}
				c, _, _ := billing.PriceUsage(f, nil, qs)
				spent += float64(c) / billing.Milli
				if at := dayStart.Add(time.Duration(7*3600+r.IntN(15*3600)) * time.Second); !at.After(now) {
					usage = append(usage, db.BackfillItem{At: at, Usage: &billing.UsageRequest{Customer: dc.in.ExternalID, Feature: fkey, Quantities: qs,
						Metadata: map[string]string{"user": dc.users[r.IntN(len(dc.users))]}}})
				}
				continue
			}
			switch fkey {
			case "gpt-4o.tokens":
				q = billing.QuantityOf(int64(200 + r.IntN(4000)))
			case "audio.transcribe":
				q = billing.Quantity(int64(5_000 + r.IntN(300_000))) // 5 to 305 seconds, in thousandths
			case "image.generate":
				q = billing.QuantityOf(int64(1 + r.IntN(4)))
			default:
				q = billing.QuantityOf(1)
			}
			c, _ := billing.Charge(f, q)
			spent += float64(c) / billing.Milli
			at := dayStart.Add(time.Duration(7*3600+r.IntN(15*3600)) * time.Second)
			if at.After(now) {
				continue
			}
			usage = append(usage, db.BackfillItem{At: at, Usage: &billing.UsageRequest{Customer: dc.in.ExternalID, Feature: fkey, Quantity: &q,
				Metadata: map[string]string{"user": dc.users[r.IntN(len(dc.users))]}}})
		}
	}
	// Merge grants into the usage timeline.
	all := append(items, usage...)
	sortByTime(all)
	return all
}

func sortByTime(items []db.BackfillItem) {
	slices.SortStableFunc(items, func(a, b db.BackfillItem) int { return a.At.Compare(b.At) })
}

// markDemoNotificationsRead marks a demo customer's notifications so far
// as read.
func markDemoNotificationsRead(ctx context.Context, d *db.DB, externalID string) error {
	c, err := d.FindCustomer(ctx, externalID)
	if err != nil {
		return err
	}
	ns, _, err := d.FindNotifications(ctx, c.ID, 0, 1)
	if err != nil || len(ns) == 0 {
		return err
	}
	return d.MarkNotificationsRead(ctx, c.ID, ns[0].ID)
}

// drainTo spends chat requests until the customer's balance is near target,
// so the demo always has a customer about to run out.
func drainTo(ctx context.Context, d *db.DB, dc demoCustomer, now time.Time, key *billing.APIKey) error {
	b, err := d.Balance(ctx, dc.in.ExternalID)
	if err != nil {
		return err
	}
	excess := int64(b.Available-billing.CreditsOf(dc.target)) / billing.Milli
	if excess <= 0 {
		return nil
	}
	var items []db.BackfillItem
	for i := int64(0); i < excess; i++ {
		q := billing.QuantityOf(1)
		// Spread over the last three days, so the demo's pace stays believable.
		at := now.Add(-time.Duration(excess-i) * (72 * time.Hour / time.Duration(excess+1)))
		items = append(items, db.BackfillItem{At: at, Usage: &billing.UsageRequest{Customer: dc.in.ExternalID, Feature: "chat.request",
			Quantity: &q, Metadata: map[string]string{"user": dc.users[int(i)%len(dc.users)]}}})
	}
	for _, err := range d.Backfill(ctx, demoActors(items, key)) {
		if err != nil && billing.ErrorCode(err) != billing.CodeInsufficientCredits {
			return err
		}
	}
	return nil
}

func printDemoWelcome(out io.Writer, base, key string) {
	fmt.Fprintf(out, `
Tally is running with demo data.

  Portal (demo customers):  %[1]s/
  API:                      %[1]s/api/v1   (OpenAPI: %[1]s/api/v1/openapi.json)
  Demo API key (admin):     %[2]s

Try:
  curl -s %[1]s/api/v1/customers/lumen-studio/balance -H "Authorization: Bearer %[2]s"
  curl -s %[1]s/api/v1/usage -H "Authorization: Bearer %[2]s" \
       -H "Idempotency-Key: demo-1" -d '{"customer":"acme-robotics","feature":"image.generate","quantity":1}'

`, base, key)
}
