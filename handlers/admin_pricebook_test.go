package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
)

// editorValues are the editor's fields as the page renders them (what a
// browser would post back unchanged).
func editorValues(t *testing.T, d *goquery.Document) url.Values {
	t.Helper()
	vals := url.Values{}
	d.Find(`form[data-testid="pb-editor"] input, form[data-testid="pb-editor"] select`).Each(func(_ int, s *goquery.Selection) {
		name, _ := s.Attr("name")
		if name == "" || name == "op" {
			return
		}
		typ, _ := s.Attr("type")
		if typ == "checkbox" {
			if _, on := s.Attr("checked"); on {
				vals.Set(name, "1")
			}
			return
		}
		if s.Is("select") {
			v, _ := s.Find("option[selected]").Attr("value")
			if v == "" {
				v, _ = s.Find("option").First().Attr("value")
			}
			vals.Set(name, v)
			return
		}
		v, _ := s.Attr("value")
		vals.Set(name, v)
	})
	return vals
}

// startDraft signs in as an admin and starts a draft from the version in
// effect; it returns the admin's browser and the editor's values.
func startDraft(t *testing.T, a *adminAPI) (*portalVisitor, url.Values) {
	t.Helper()
	v := a.signIn(t, "admin@staff.test")
	r := v.adminPost("/admin/price-book", "/admin/price-book/draft/start", nil)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/price-book/draft" {
		t.Fatalf("start: %d %q %.300s", r.Status, r.Header.Get("Location"), r.Raw)
	}
	page := v.get("/admin/price-book/draft").want(t, http.StatusOK)
	return v, editorValues(t, doc(t, page))
}

func TestAdminPriceBookEditor(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	v, vals := startDraft(t, a)
	if vals.Get("features[0].key") != "chat.request" || vals.Get("packs[0].price") != "10.00" || vals.Get("rev") != "1" || vals.Get("base") != "1" {
		t.Fatalf("the draft starts from version 1: %v", vals)
	}

	t.Run("a plan's choices read as words", func(t *testing.T) {
		add := maps.Clone(vals) // Set replaces a value: vals stays as it was
		add.Set("op", "add-plan")
		add.Set("_csrf", v.csrf("/admin/price-book/draft"))
		r := v.post("/admin/price-book/draft", add)
		if r.Status == http.StatusSeeOther {
			r = v.get(r.Header.Get("Location"))
		}
		var got []string
		doc(t, r).Find(`select[name$=".rollover"] option`).Each(func(_ int, o *goquery.Selection) {
			got = append(got, o.AttrOr("value", "")+"="+o.Text())
		})
		want := []string{"none=None: unused credits expire", "up_to=Up to a number of credits", "all=All unused credits"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("rollover options %q, want %q", got, want)
		}
	})

	t.Run("errors beside their fields, all at once, nothing saved", func(t *testing.T) {
		bad := maps.Clone(vals) // Set replaces a value: vals stays as it was
		bad.Set("features[0].credits", "abc")
		bad.Set("features[1].key", "Bad Key")
		bad.Set("packs[0].price", "")
		bad.Set("packs[1].credits", "0")
		bad.Set("custom_top_up.min", "50.00")
		bad.Set("custom_top_up.max", "5.00")
		bad.Set("_csrf", v.csrf("/admin/price-book/draft"))
		r := v.post("/admin/price-book/draft", bad)
		if r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d", r.Status)
		}
		d := doc(t, r)
		for _, field := range []string{"features[0].credits", "features[1].key", "packs[0].price", "packs[1].credits", "custom_top_up.max"} {
			e := d.Find(`[data-testid="error-` + field + `"]`)
			if e.Length() != 1 || strings.TrimSpace(e.Text()) == "" {
				t.Errorf("no error beside %s", field)
			}
			// The error is tied to its input.
			id, _ := e.Attr("id")
			if in := d.Find(`[name="` + field + `"]`); in.AttrOr("aria-describedby", "") != id || in.AttrOr("aria-invalid", "") != "true" {
				t.Errorf("%s: input not described by its error", field)
			}
		}
		if got := d.Find(`[name="features[1].key"]`).AttrOr("value", ""); got != "Bad Key" {
			t.Errorf("typed value not kept: %q", got)
		}
		if dr, _ := a.DB.FindPriceBookDraft(ctx); dr.Rev != 1 {
			t.Errorf("a refused save saved: rev %d", dr.Rev)
		}
	})

	t.Run("rows are added and removed without saving", func(t *testing.T) {
		f := maps.Clone(vals) // Set replaces a value: vals stays as it was
		f.Set("op", "add-dimension-3")
		f.Set("_csrf", v.csrf("/admin/price-book/draft"))
		r := v.post("/admin/price-book/draft", f).want(t, http.StatusOK)
		d := doc(t, r)
		if d.Find(`[data-testid="pb-feature"][data-row="3"] [data-testid="pb-dimension"]`).Length() != 1 || d.Find(`[data-testid="pb-unsaved"]`).Length() != 1 {
			t.Fatalf("no new dimension: %.500s", r.Raw)
		}
		f = editorValues(t, d)
		f.Set("op", "remove-pack-0")
		f.Set("_csrf", v.csrf("/admin/price-book/draft"))
		d = doc(t, v.post("/admin/price-book/draft", f).want(t, http.StatusOK))
		if d.Find(`[data-testid="pb-pack"]`).Length() != 1 || d.Find(`[name="packs[0].id"]`).AttrOr("value", "") != "pack_5500" {
			t.Fatalf("pack not removed")
		}
		if dr, _ := a.DB.FindPriceBookDraft(ctx); len(dr.Book.Packs) != 2 || len(dr.Book.Features[3].Dimensions) != 0 {
			t.Fatalf("a row operation saved the draft")
		}
	})

	t.Run("a save stores the draft; margins are shown", func(t *testing.T) {
		f := maps.Clone(vals) // Set replaces a value: vals stays as it was
		f.Set("features[0].credits", "2")
		f.Set("features[3].cost", "5") // gpt-4o.tokens: $5 per 1M tokens
		f.Set("packs[0].bonus_credits", "100")
		f.Del("packs[1].active")
		f.Set("custom_top_up.min", "5.00")
		f.Set("custom_top_up.max", "500.00")
		f.Set("custom_top_up.credits_per_unit", "110")
		f.Set("_csrf", v.csrf("/admin/price-book/draft"))
		r := v.post("/admin/price-book/draft", f)
		if r.Status != http.StatusSeeOther {
			t.Fatalf("save: %d %.800s", r.Status, r.Raw)
		}
		dr, err := a.DB.FindPriceBookDraft(ctx)
		if err != nil || dr.Rev != 2 || dr.Book.Features[0].Credits != billing.CreditsOf(2) || dr.Book.Packs[0].Bonus != billing.CreditsOf(100) ||
			dr.Book.Packs[1].IsActive() || dr.Book.CustomTopUp == nil || dr.Book.CustomTopUp.Max != 500_00 || dr.Book.Features[3].Cost.Micros != 5_000_000 {
			t.Fatalf("draft = %+v %v", dr, err)
		}
		page := doc(t, v.get("/admin/price-book/draft").want(t, http.StatusOK))
		if page.Find(`[data-testid="flash"]`).Length() != 1 {
			t.Errorf("no flash after saving: %s", page.Find("main").Text())
		}
		// gpt-4o.tokens: 2.5 credits per 1,000 tokens = $25 per 1M at
		// Starter's $0.01 a credit; cost $5: margin 80%. Growth is off
		// sale, so Starter is the only column.
		m := page.Find(`[data-testid="pb-margins"][data-key="features[3]"] [data-testid="pb-margin"]`)
		if m.Length() != 1 || strings.TrimSpace(m.Text()) != "80.0%" {
			t.Errorf("margin = %d %q", m.Length(), m.Text())
		}
		// An editor holding the first revision cannot overwrite this save.
		f.Set("rev", "1")
		if r := v.post("/admin/price-book/draft", f); r.Status != http.StatusConflict {
			t.Errorf("stale save: %d", r.Status)
		}
	})

	t.Run("support reads the draft, cannot change it", func(t *testing.T) {
		s := a.signIn(t, "support@staff.test")
		d := doc(t, s.get("/admin/price-book/draft").want(t, http.StatusOK))
		if _, dis := d.Find(`form[data-testid="pb-editor"] fieldset`).Attr("disabled"); !dis || d.Find(`[data-testid="pb-save"]`).Length() != 0 {
			t.Error("the editor is not read-only for support")
		}
		if d := doc(t, s.get("/admin/price-book").want(t, http.StatusOK)); d.Find(`[data-testid="pb-rollback"], [data-testid="pb-discard"]`).Length() != 0 {
			t.Error("support sees write actions")
		}
		f := editorValues(t, doc(t, v.get("/admin/price-book/draft").want(t, http.StatusOK)))
		f.Set("_csrf", adminToken(t, s))
		if r := s.post("/admin/price-book/draft", f); r.Status != http.StatusForbidden {
			t.Errorf("support save: %d", r.Status)
		}
	})
}

// usageFixture meters usage for the impact preview: two customers'
// chat requests (1 credit each in version 1) and one's images.
func usageFixture(t *testing.T, a *adminAPI) (big, small string) {
	t.Helper()
	big, small = a.namedCustomer(t, "big", "Big Co"), a.namedCustomer(t, "small", "Small Co")
	a.grant(t, big, "1000", "purchase")
	a.grant(t, small, "1000", "purchase")
	for i := 0; i < 4; i++ {
		a.usage(big, "chat.request", "10", "").want(t, http.StatusCreated)
	}
	a.usage(small, "chat.request", "3", "").want(t, http.StatusCreated)
	a.usage(small, "image.generate", "2", "").want(t, http.StatusCreated)
	return big, small
}

func TestAdminPriceBookImpactAndPublish(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	big, small := usageFixture(t, a)
	v, vals := startDraft(t, a)
	vals.Set("features[0].credits", "1.5") // chat.request: 1 -> 1.5
	vals.Set("_csrf", v.csrf("/admin/price-book/draft"))
	if r := v.post("/admin/price-book/draft", vals); r.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %.500s", r.Status, r.Raw)
	}

	// 43 chat requests: 43 credits now, 64.5 under the draft; images 10 both.
	check := func(d *goquery.Document) {
		t.Helper()
		if got := strings.TrimSpace(d.Find(`[data-testid="impact-delta"]`).Text()); got != "+21.5" {
			t.Errorf("delta %q", got)
		}
		if got := strings.TrimSpace(d.Find(`[data-testid="impact-current"]`).Text()); got != "53" {
			t.Errorf("current %q", got)
		}
		if got := strings.TrimSpace(d.Find(`[data-testid="impact-draft"]`).Text()); got != "74.5" {
			t.Errorf("draft %q", got)
		}
		rows := d.Find(`[data-testid="impact-feature"]`)
		if rows.Length() != 2 || rows.First().AttrOr("data-feature", "") != "chat.request" ||
			strings.TrimSpace(rows.First().Find(`[data-testid="impact-feature-draft"]`).Text()) != "64.5" {
			t.Errorf("feature rows: %d %q", rows.Length(), rows.First().AttrOr("data-feature", ""))
		}
		cus := d.Find(`[data-testid="impact-customer"]`)
		if cus.Length() != 2 || cus.First().AttrOr("data-customer", "") != big || cus.Eq(1).AttrOr("data-customer", "") != small ||
			!strings.Contains(cus.First().Text(), "Big Co") || !strings.HasPrefix(strings.TrimSpace(cus.First().Find(`[data-testid="impact-customer-delta"]`).Text()), "+20") {
			t.Errorf("customers: %d %q", cus.Length(), cus.Text())
		}
	}
	check(doc(t, a.signIn(t, "support@staff.test").get("/admin/price-book/draft/impact").want(t, http.StatusOK)))

	// Publishing asks first, with the impact; an incomplete time is refused
	// beside its field; nothing is published until confirmed.
	r := v.adminPost("/admin/price-book/draft", "/admin/price-book/draft/publish", url.Values{"rev": {"2"}}).want(t, http.StatusOK)
	d := doc(t, r)
	check(d)
	if d.Find(`form[data-testid="pb-confirm"]`).Length() != 1 {
		t.Fatal("no confirmation form")
	}
	r = v.adminPost("/admin/price-book/draft", "/admin/price-book/draft/publish", url.Values{"rev": {"2"}, "confirm": {"1"}, "when": {"later"}, "at": {"yesterday"}})
	if r.Status != http.StatusUnprocessableEntity || doc(t, r).Find(`[data-testid="error-at"]`).Length() != 1 {
		t.Fatalf("a bad time: %d", r.Status)
	}
	// A time typed with "now" chosen is a question, not a publish now.
	r = v.adminPost("/admin/price-book/draft", "/admin/price-book/draft/publish", url.Values{"rev": {"2"}, "confirm": {"1"}, "when": {"now"}, "at": {"2030-01-01T09:00"}})
	if r.Status != http.StatusUnprocessableEntity || doc(t, r).Find(`[data-testid="error-when"]`).Length() != 1 {
		t.Fatalf("now with a time: %d", r.Status)
	}
	if vs, _ := a.DB.ListPriceBooks(ctx); len(vs) != 1 {
		t.Fatal("published before the confirmation")
	}
	r = v.adminPost("/admin/price-book/draft", "/admin/price-book/draft/publish", url.Values{"rev": {"2"}, "confirm": {"1"}, "when": {"now"}, "reason": {"chat costs more"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/admin/price-book" {
		t.Fatalf("publish: %d %.300s", r.Status, r.Raw)
	}
	page := doc(t, v.get("/admin/price-book").want(t, http.StatusOK))
	if f := page.Find(`[data-testid="flash"]`).Text(); !strings.Contains(f, "Published version 2") {
		t.Errorf("flash %q", f)
	}
	if got := strings.TrimSpace(page.Find(`[data-testid="pb-current-version"]`).Text()); got != "Version 2" {
		t.Errorf("current %q", got)
	}
	if page.Find(`[data-testid="pb-no-draft"]`).Length() != 1 || page.Find(`[data-testid="pb-version-row"]`).Length() != 2 ||
		!strings.Contains(page.Find(`[data-testid="pb-version-row"]`).First().Find(`[data-testid="pb-by"]`).Text(), "admin@staff.test") {
		t.Errorf("history or draft wrong")
	}
	// A debit right after the publish uses the new version.
	deb := a.usage(small, "chat.request", "2", "").want(t, http.StatusCreated)
	if deb.Body["price_version"] != json.Number("2") || deb.Body["credits_charged"] != json.Number("3") {
		t.Errorf("debit after publish: %v", deb.Body)
	}
	recs := a.audit(t, billing.AuditFilter{Action: billing.AuditPriceBookPublished})
	if len(recs) != 1 || recs[0].Reason != "chat costs more" || recs[0].Actor != billing.AdminActor(a.Admin.ID) || recs[0].Before != "v1" {
		t.Errorf("audit = %+v", recs)
	}
	// A second press publishes nothing more.
	r = v.adminPost("/admin/price-book", "/admin/price-book/draft/publish", url.Values{"rev": {"2"}, "confirm": {"1"}, "when": {"now"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("second press: %d", r.Status)
	}
	if vs, _ := a.DB.ListPriceBooks(ctx); len(vs) != 2 {
		t.Errorf("versions after a second press: %d", len(vs))
	}
}

func TestAdminPriceBookScheduleAndRollback(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	cus := a.namedCustomer(t, "sched", "Sched Co")
	a.grant(t, cus, "100", "purchase")
	v, vals := startDraft(t, a)
	vals.Set("features[0].credits", "3")
	vals.Set("_csrf", v.csrf("/admin/price-book/draft"))
	v.post("/admin/price-book/draft", vals).want(t, http.StatusSeeOther)
	at := a.Clock.Now().Add(2 * time.Hour).UTC().Format("2006-01-02T15:04")
	r := v.adminPost("/admin/price-book/draft", "/admin/price-book/draft/publish", url.Values{"rev": {"2"}, "confirm": {"1"}, "when": {"later"}, "at": {at}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("schedule: %d %.300s", r.Status, r.Raw)
	}
	page := doc(t, v.get("/admin/price-book").want(t, http.StatusOK))
	if !strings.Contains(page.Find(`[data-testid="flash"]`).Text(), "Scheduled version 2") || page.Find(`[data-testid="pb-scheduled"]`).Length() != 1 ||
		page.Find(`[data-testid="pb-badge-scheduled"]`).Length() != 1 || strings.TrimSpace(page.Find(`[data-testid="pb-current-version"]`).Text()) != "Version 1" {
		t.Fatalf("scheduled version not shown: %.300s", page.Find("main").Text())
	}
	// The history writes both of a version's times the same way, in UTC,
	// as the schedule was typed.
	published := strings.TrimSpace(page.Find(`[data-testid="pb-published"]`).First().Text())
	effective := strings.TrimSpace(page.Find(`[data-testid="pb-effective"]`).First().Text())
	if want := a.Clock.Now().UTC().Format("2 Jan 2006 15:04") + " UTC"; published != want || !strings.HasSuffix(effective, " UTC") {
		t.Errorf("the scheduled version: published %q (want %q), effective %q", published, want, effective)
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditPriceBookScheduled}); len(recs) != 1 {
		t.Errorf("schedule audit: %+v", recs)
	}
	if deb := a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated); deb.Body["price_version"] != json.Number("1") {
		t.Errorf("before its time: %v", deb.Body["price_version"])
	}
	a.Clock.Advance(2 * time.Hour)
	if deb := a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated); deb.Body["price_version"] != json.Number("2") || deb.Body["credits_charged"] != json.Number("3") {
		t.Errorf("at its time: %v", deb.Body)
	}

	// A confirmation while a version is scheduled says it will take over.
	v.adminPost("/admin/price-book", "/admin/price-book/draft/start", nil)
	later := a.Clock.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04")
	v.adminPost("/admin/price-book/draft", "/admin/price-book/draft/publish", url.Values{"rev": {"1"}, "confirm": {"1"}, "when": {"later"}, "at": {later}}).want(t, http.StatusSeeOther)
	r = v.adminPost("/admin/price-book", "/admin/price-book/versions/1/rollback", nil).want(t, http.StatusOK)
	if doc(t, r).Find(`[data-testid="pb-confirm-pending"]`).Length() != 1 {
		t.Error("no warning of the scheduled version")
	}
	a.Clock.Advance(25 * time.Hour) // v3 (a copy of v2) takes effect
	// Roll back to version 1: a confirmation first, then a copy of it.
	r = v.adminPost("/admin/price-book", "/admin/price-book/versions/1/rollback", nil).want(t, http.StatusOK)
	if d := doc(t, r); d.Find(`form[data-testid="pb-confirm"]`).Length() != 1 || d.Find(`[data-testid="impact-summary"]`).Length() != 1 {
		t.Fatal("no rollback confirmation")
	}
	if vs, _ := a.DB.ListPriceBooks(ctx); len(vs) != 3 {
		t.Fatal("rolled back before the confirmation")
	}
	r = v.adminPost("/admin/price-book", "/admin/price-book/versions/1/rollback", url.Values{"confirm": {"1"}, "when": {"now"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("rollback: %d %.300s", r.Status, r.Raw)
	}
	// The flash says it was a rollback, to which version, and counts plans.
	if f := testID(t, v.get("/admin/price-book"), "flash"); !strings.HasPrefix(f, "Rolled back to version 1: its prices are published as version 4 (") || !strings.Contains(f, " plan") {
		t.Errorf("rollback flash %q", f)
	}
	time.Sleep(1100 * time.Millisecond) // the read path trusts its copy for a second
	cur, _ := a.DB.CurrentPriceBook(ctx)
	v1, _ := a.DB.PriceBookVersion(ctx, 1)
	if cur.Version != 4 || cur.Features[0].Credits != v1.Features[0].Credits {
		t.Fatalf("after the rollback: v%d %v", cur.Version, cur.Features[0].Credits)
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditPriceBookRolledBack}); len(recs) != 1 || !strings.Contains(recs[0].Reason, "version 1") {
		t.Errorf("rollback audit: %+v", recs)
	}
	if deb := a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated); deb.Body["price_version"] != json.Number("4") || deb.Body["credits_charged"] != json.Number("1") {
		t.Errorf("after the rollback: %v", deb.Body)
	}
	// Again: its prices are in effect, nothing is published.
	v.adminPost("/admin/price-book", "/admin/price-book/versions/1/rollback", url.Values{"confirm": {"1"}, "when": {"now"}}).want(t, http.StatusSeeOther)
	if vs, _ := a.DB.ListPriceBooks(ctx); len(vs) != 4 {
		t.Errorf("a second rollback made a version: %d", len(vs))
	}
}

// TestAdminPriceBookCancelScheduled: an admin cancels a version scheduled
// for later, after a confirmation; it never takes effect, the history
// marks it, and support sees no way to cancel.
func TestAdminPriceBookCancelScheduled(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	cus := a.namedCustomer(t, "sched", "Sched Co")
	a.grant(t, cus, "100", "purchase")
	cur, err := a.DB.CurrentPriceBook(ctx)
	if err != nil || cur == nil {
		t.Fatal(cur, err)
	}
	pb := *cur
	pb.Features = append([]billing.Feature(nil), cur.Features...)
	pb.Features[0].Credits = billing.CreditsOf(7)
	sched, _, err := a.DB.PublishPriceBookWith(ctx, pb, db.PublishOptions{EffectiveAt: a.Clock.Now().Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/admin/price-book/versions/%d/cancel", sched.Version)
	support := a.signIn(t, "support@staff.test")
	if doc(t, support.get("/admin/price-book")).Find(`[data-testid="pb-cancel-scheduled"]`).Length() != 0 {
		t.Error("support is offered the cancel button")
	}
	v := a.signIn(t, "admin@staff.test")
	page := doc(t, v.get("/admin/price-book").want(t, http.StatusOK))
	if page.Find(`[data-testid="pb-cancel-scheduled"]`).Length() != 1 {
		t.Fatal("no cancel button beside the scheduled version")
	}
	// A confirmation first: nothing is cancelled by it.
	r := v.adminPost("/admin/price-book", path, nil).want(t, http.StatusOK)
	if got := testID(t, r, "confirm"); !strings.Contains(got, fmt.Sprintf("Version %d is scheduled to take effect", sched.Version)) {
		t.Fatalf("confirmation: %q", got)
	}
	if all, _ := a.DB.ListPriceBooks(ctx); all[0].CancelledAt != nil {
		t.Fatal("cancelled before the confirmation")
	}
	v.adminPost("/admin/price-book", path, url.Values{"confirm": {"1"}}).want(t, http.StatusSeeOther)
	page = doc(t, v.get("/admin/price-book").want(t, http.StatusOK))
	if !strings.Contains(page.Find(`[data-testid="flash"]`).Text(), fmt.Sprintf("Cancelled version %d", sched.Version)) ||
		page.Find(`[data-testid="pb-scheduled"]`).Length() != 0 || page.Find(`[data-testid="pb-badge-cancelled"]`).Length() != 1 ||
		page.Find(`[data-testid="pb-badge-scheduled"]`).Length() != 0 {
		t.Fatalf("after the cancel: %.400s", page.Find("main").Text())
	}
	// Rolling back no longer warns that the cancelled version replaces it.
	r = v.adminPost("/admin/price-book", fmt.Sprintf("/admin/price-book/versions/%d/rollback", cur.Version), nil).want(t, http.StatusOK)
	if got := doc(t, r).Find(`[data-testid="pb-confirm-pending"]`); got.Length() != 0 {
		t.Errorf("the rollback confirmation warns about the cancelled version: %q", got.Text())
	}
	// The date it was cancelled is text, not a tooltip.
	if got := page.Find(`[data-testid="pb-cancelled-on"]`).Text(); !strings.HasPrefix(got, "Cancelled on ") {
		t.Fatalf("the cancelled version's line: %q", got)
	}
	if recs := a.audit(t, billing.AuditFilter{Action: billing.AuditPriceBookCancelled}); len(recs) != 1 || recs[0].Actor != billing.AdminActor(a.Admin.ID) {
		t.Fatalf("audit: %+v", recs)
	}
	// The API's list says so too.
	list := a.do("GET", "/api/v1/price-books", a.Read, nil).want(t, http.StatusOK)
	if data, _ := list.Body["data"].([]any); len(data) == 0 || data[0].(map[string]any)["cancelled_at"] == nil ||
		data[0].(map[string]any)["cancelled_by"] != billing.AdminActor(a.Admin.ID).String() {
		t.Fatalf("the API's list: %s", list.Raw)
	}
	// Its time passes: the version before it still prices usage.
	a.Clock.Advance(3 * time.Hour)
	if deb := a.usage(cus, "chat.request", "1", "").want(t, http.StatusCreated); deb.Body["price_version"] != json.Number(strconv.FormatInt(cur.Version, 10)) {
		t.Errorf("after the cancelled version's time: %v", deb.Body)
	}
	// Twice: refused with a flash, nothing changes.
	v.adminPost("/admin/price-book", path, url.Values{"confirm": {"1"}}).want(t, http.StatusSeeOther)
	if got := doc(t, v.get("/admin/price-book")).Find(`[data-testid="flash"]`).Text(); !strings.Contains(got, "cancelled already") {
		t.Errorf("second cancel: flash %q", got)
	}
}

// postFile posts a multipart form with one file, as a browser does.
func postFile(t *testing.T, v *portalVisitor, from, path string, fields map[string]string, name string, file []byte) response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("_csrf", v.csrf(from))
	for k, val := range fields {
		w.WriteField(k, val)
	}
	if file != nil {
		fw, _ := w.CreateFormFile("file", name)
		fw.Write(file)
	}
	w.Close()
	req, _ := http.NewRequest("POST", v.a.HTTP.URL+path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	res, err := v.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Raw: raw}
}

func TestAdminPriceBookImportExport(t *testing.T) {
	t.Parallel()
	a := newAdminAPI(t)
	ctx := context.Background()
	v, _ := startDraft(t, a)

	// A version's export is a file `tally pricebook publish --file` reads.
	r := v.get("/admin/price-book/versions/1/export").want(t, http.StatusOK)
	if !strings.Contains(r.Header.Get("Content-Disposition"), "price-book-v1.json") {
		t.Errorf("disposition %q", r.Header.Get("Content-Disposition"))
	}
	var pb billing.PriceBook
	if err := json.Unmarshal(r.Raw, &pb); err != nil || len(pb.Features) != 4 || pb.Packs[0].ID != "pack_1000" {
		t.Fatalf("export = %.300s %v", r.Raw, err)
	}
	// Imported back with a change, it becomes the draft.
	pb.Features[1].Credits = billing.CreditsOf(7)
	file, _ := json.Marshal(pb)
	r = postFile(t, v, "/admin/price-book/draft", "/admin/price-book/draft/import", nil, "book.json", file)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("import: %d %.500s", r.Status, r.Raw)
	}
	dr, _ := a.DB.FindPriceBookDraft(ctx)
	if dr.Book.Features[1].Credits != billing.CreditsOf(7) || dr.BaseVersion != 1 {
		t.Fatalf("imported draft = %+v", dr.Book.Features[1])
	}
	draftJSON := v.get("/admin/price-book/draft/export").want(t, http.StatusOK)
	if !strings.Contains(string(draftJSON.Raw), `"credits": 7`) {
		t.Errorf("draft export: %.300s", draftJSON.Raw)
	}
	// A file that is not a price book is refused beside the file field.
	r = postFile(t, v, "/admin/price-book/draft", "/admin/price-book/draft/import", nil, "bad.json", []byte(`{"features": [{"key": "x", "credits": -1}]}`))
	if r.Status != http.StatusUnprocessableEntity || doc(t, r).Find(`[data-testid="error-import.file"]`).Length() != 1 {
		t.Fatalf("bad import: %d %s", r.Status, doc(t, r).Find("main").Text())
	}

	// Provider costs in LiteLLM's layout: the filter picks the models, the
	// margin prices them at the chosen pack's credit price.
	prices := []byte(`{
		"sample_spec": {"input_cost_per_token": 0},
		"gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06},
		"gpt-4o-mini": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07},
		"claude-3-5-sonnet": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05},
		"dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04}
	}`)
	r = postFile(t, v, "/admin/price-book/draft", "/admin/price-book/draft/import-costs", map[string]string{"models": "gpt-4o*", "margin": "abc", "pack": "pack_1000"}, "prices.json", prices)
	if r.Status != http.StatusUnprocessableEntity || doc(t, r).Find(`[data-testid="error-costs.margin"]`).Length() != 1 {
		t.Fatalf("a bad margin: %d", r.Status)
	}
	// The real file is over 1 MiB (the API's body limit): pad this one with
	// 12,000 other models to about 1.5 MiB.
	var big strings.Builder
	big.Write(prices[:len(prices)-2]) // without the closing brace
	for i := 0; i < 12000; i++ {
		fmt.Fprintf(&big, `,
		"provider/other-model-%05d": {"litellm_provider": "other", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}`, i)
	}
	big.WriteString("\n}")
	if big.Len() <= handlers.MaxBody {
		t.Fatalf("the padded file is only %d bytes", big.Len())
	}
	r = postFile(t, v, "/admin/price-book/draft", "/admin/price-book/draft/import-costs", map[string]string{"models": "gpt-4o*", "margin": "60", "pack": "pack_1000"}, "prices.json", []byte(big.String()))
	if r.Status != http.StatusSeeOther {
		t.Fatalf("import costs from a %d-byte file: %d %.500s", big.Len(), r.Status, r.Raw)
	}
	dr, _ = a.DB.FindPriceBookDraft(ctx)
	got := map[string]billing.Feature{}
	for _, f := range dr.Book.Features {
		got[f.Key] = f
	}
	f, ok := got["gpt-4o"]
	if !ok || got["gpt-4o-mini"].Key == "" || got["claude-3-5-sonnet"].Key != "" || len(dr.Book.Features) != 6 {
		t.Fatalf("features = %v", dr.Book.Features)
	}
	// Input: $2.50 per 1M tokens at 60% margin at $0.01 a credit: $6.25
	// per 1M = 0.625 credits per 1,000 tokens.
	if f.Dimensions[0].Key != "input_tokens" || f.Dimensions[0].Credits != 625 || f.Dimensions[0].UnitSize != 1000 {
		t.Errorf("gpt-4o input = %+v", f.Dimensions[0])
	}
	d := doc(t, v.get("/admin/price-book/draft").want(t, http.StatusOK))
	if m := d.Find(`[data-testid="pb-margins"][data-key="features[4].dimensions[0]"] [data-testid="pb-margin"]`).First().Text(); strings.TrimSpace(m) != "60.0%" {
		t.Errorf("imported margin %q", m)
	}
	r = postFile(t, v, "/admin/price-book/draft", "/admin/price-book/draft/import-costs", map[string]string{"models": "gpt-5", "margin": "60", "pack": "pack_1000"}, "prices.json", prices)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(doc(t, r).Find(`[data-testid="error-costs.models"]`).Text(), "gpt-5") {
		t.Errorf("an unknown model: %d", r.Status)
	}

	// A version published meanwhile (the CLI): the editor says so.
	next := testPriceBook()
	next.Features[0].Credits = billing.CreditsOf(4)
	if _, _, err := a.DB.PublishPriceBook(ctx, next); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if d := doc(t, v.get("/admin/price-book/draft").want(t, http.StatusOK)); d.Find(`[data-testid="pb-draft-behind"]`).Length() != 1 {
		t.Error("no notice that the draft is behind")
	}

	// Every change to the draft is in the audit log, by the admin who made
	// it: the start, the two imports that changed it (the refused ones
	// wrote nothing), and the discard.
	v.adminPost("/admin/price-book/draft", "/admin/price-book/draft/discard", nil).want(t, http.StatusSeeOther)
	if _, err := a.DB.FindPriceBookDraft(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		action, reason string
		n              int
	}{
		{billing.AuditPriceBookDraftSaved, "started a draft", 1},
		{billing.AuditPriceBookDraftImported, "a price book file", 1},
		{billing.AuditPriceBookDraftImported, "provider costs: gpt-4o, gpt-4o-mini", 1},
		{billing.AuditPriceBookDraftDiscarded, "", 1},
	} {
		n := 0
		for _, r := range a.audit(t, billing.AuditFilter{Action: want.action}) {
			if r.Reason == want.reason && r.Actor == billing.AdminActor(a.Admin.ID) {
				n++
			}
		}
		if n != want.n {
			t.Errorf("%d audit records %s %q by the admin, want %d", n, want.action, want.reason, want.n)
		}
	}
}

// The API (and `tally pricebook publish --file`) schedules a version with
// effective_at; until then the current price book is the one in effect.
func TestPriceBookAPISchedules(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	pb := testPriceBook()
	pb.Features[0].Credits = billing.CreditsOf(9)
	at := a.Clock.Now().Add(time.Hour)
	pb.EffectiveAt = &at
	r := a.do("POST", "/api/v1/price-books", a.Admin, pb).want(t, http.StatusCreated)
	if r.Body["version"] != json.Number("2") || r.Body["effective_at"] != at.UTC().Format(time.RFC3339) {
		t.Fatalf("scheduled = %v", r.Body)
	}
	time.Sleep(1100 * time.Millisecond)
	if cur := a.do("GET", "/api/v1/price-book", a.Read, nil).want(t, http.StatusOK); cur.Body["version"] != json.Number("1") {
		t.Fatalf("current before its time: %v", cur.Body["version"])
	}
	a.Clock.Advance(time.Hour)
	time.Sleep(1100 * time.Millisecond)
	if cur := a.do("GET", "/api/v1/price-book", a.Read, nil).want(t, http.StatusOK); cur.Body["version"] != json.Number("2") {
		t.Fatalf("current at its time: %v", cur.Body["version"])
	}
}

// A pack's bonus credits are shown and granted with it; a pack off sale is
// not offered and a purchase of it is refused; the price book's custom
// top-up range and rate apply to custom amounts.
func TestPortalPackBonusAndOffSale(t *testing.T) {
	p := newPayAPI(t)
	ctx := context.Background()
	pb := testPriceBook()
	off := false
	pb.Packs[0].Bonus = billing.CreditsOf(100)
	pb.Packs[1].Active = &off
	pb.CustomTopUp = &billing.CustomTopUp{Min: 20_00, Max: 30_00, CreditsPerUnit: billing.CreditsOf(120)}
	if _, _, err := p.DB.PublishPriceBook(ctx, pb); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the read path's copy is trusted for a second
	id, v := p.shopper(t, "bonus")
	v.addCard(cardOK)
	page := doc(t, v.get("/portal/billing").want(t, http.StatusOK))
	if got := strings.TrimSpace(page.Find(`[data-testid="pack-pack_1000"] [data-testid="pack-bonus"]`).Text()); got != "+100 bonus" {
		t.Errorf("bonus %q", got)
	}
	if page.Find(`[data-testid="pack-pack_5500"]`).Length() != 0 {
		t.Error("a pack off sale is offered")
	}
	if r := v.confirm(url.Values{"pack": {"pack_5500"}}); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("confirming a pack off sale: %d", r.Status)
	}
	c := v.confirm(url.Values{"pack": {"pack_1000"}}).want(t, http.StatusOK)
	if got := testID(t, c, "confirm-text"); !strings.Contains(got, "Add 1,100 credits for $10.00") {
		t.Errorf("confirm text %q", got)
	}
	v.location(v.post("/portal/top-ups", payForm(t, c)), http.StatusSeeOther)
	if got := p.available(t, id); got != billing.CreditsOf(1100) {
		t.Errorf("balance %s, want 1,100", got)
	}
	// Custom amounts: $25 at 120 credits a dollar; $10 is below the range.
	if r := v.confirm(url.Values{"amount": {"10.00"}}); r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Raw), "$20.00") {
		t.Errorf("below the range: %d", r.Status)
	}
	c = v.confirm(url.Values{"amount": {"25.00"}}).want(t, http.StatusOK)
	if got := testID(t, c, "confirm-text"); !strings.Contains(got, "Add 3,000 credits for $25.00") {
		t.Errorf("custom confirm text %q", got)
	}
}
