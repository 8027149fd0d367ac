package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers/forms"
	"github.com/tally-billing/tally/views"
)

// adminPriceBookStore is what the price-book pages need from storage
// (*db.DB). Errors: validation_failed, not_found, conflict.
type adminPriceBookStore interface {
	ListPriceBooks(ctx context.Context) ([]billing.PriceBook, error)
	PriceBookVersion(ctx context.Context, version int64) (*billing.PriceBook, error)
	FindPriceBookDraft(ctx context.Context) (*db.PriceBookDraft, error)
	SavePriceBookDraft(ctx context.Context, pb billing.PriceBook, base, rev int64, actor billing.Actor) (db.PriceBookDraft, error)
	DiscardPriceBookDraft(ctx context.Context) error
	PublishPriceBookWith(ctx context.Context, pb billing.PriceBook, o db.PublishOptions) (billing.PriceBook, bool, error)
	CancelScheduledPriceBook(ctx context.Context, version int64, actor billing.Actor, reason string) (billing.PriceBook, error)
	UsageTotals(ctx context.Context, since time.Time) ([]billing.UsageTotal, error)
}

// impactWindow is how much past usage the impact preview prices.
const impactWindow = 30 * 24 * time.Hour

// impactTop is how many customers the impact preview lists.
const impactTop = 10

// maxEditorRows bounds the rows the editor reads of each list.
const maxEditorRows = 500

// registerAdminPriceBook mounts the price-book pages: support reads,
// admins edit, publish and roll back.
func (s *Server) registerAdminPriceBook(g *echo.Group, support, admin echo.MiddlewareFunc) {
	g.GET("/price-book", s.adminPriceBookPage, support)
	g.GET("/price-book/draft", s.adminDraftPage, support)
	g.POST("/price-book/draft", s.adminDraftSave, admin)
	g.POST("/price-book/draft/start", s.adminDraftStart, admin)
	g.POST("/price-book/draft/discard", s.adminDraftDiscard, admin)
	g.GET("/price-book/draft/impact", s.adminDraftImpact, support)
	g.GET("/price-book/draft/export", s.adminDraftExport, support)
	g.POST("/price-book/draft/import", s.adminDraftImport, admin)
	g.POST("/price-book/draft/import-costs", s.adminDraftImportCosts, admin)
	g.POST("/price-book/draft/publish", s.adminDraftPublish, admin)
	g.GET("/price-book/versions/:version/export", s.adminVersionExport, support)
	g.POST("/price-book/versions/:version/rollback", s.adminVersionRollback, admin)
	g.POST("/price-book/versions/:version/cancel", s.adminVersionCancel, admin)
}

func (s *Server) priceBookStore() (adminPriceBookStore, error) {
	ps, ok := s.store.(adminPriceBookStore)
	if !ok {
		return nil, billing.Errorf(billing.CodeNotFound, "This store keeps no price-book drafts.")
	}
	return ps, nil
}

// GET /admin/price-book (support and up): the version in effect, the
// scheduled ones, the history and the draft.
func (s *Server) adminPriceBookPage(c echo.Context) error {
	ctx := c.Request().Context()
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	all, err := ps.ListPriceBooks(ctx)
	if err != nil {
		return err
	}
	cur, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return err
	}
	names := s.adminNames(ctx)
	var d views.AdminPriceBookPage
	d.Current = cur
	now := s.store.Now()
	for _, pb := range all {
		row := views.AdminVersionRow{Book: pb, By: publisherName(pb.PublishedBy, names)}
		row.Current = cur != nil && pb.Version == cur.Version
		row.Scheduled = pb.CancelledAt == nil && pb.EffectiveAt != nil && pb.EffectiveAt.After(now)
		if row.Scheduled {
			d.Scheduled = append(d.Scheduled, pb)
		}
		d.History = append(d.History, row)
	}
	sort.Slice(d.Scheduled, func(i, j int) bool { return d.Scheduled[i].EffectiveAt.Before(*d.Scheduled[j].EffectiveAt) })
	dr, err := ps.FindPriceBookDraft(ctx)
	if err != nil {
		return err
	}
	if dr != nil {
		d.Draft = &views.AdminDraftSummary{BaseVersion: dr.BaseVersion, Features: len(dr.Book.Features), Packs: len(dr.Book.Packs),
			Plans: len(dr.Book.Plans), By: publisherName(dr.UpdatedBy.String(), names), At: dr.UpdatedAt}
	}
	return render(c, http.StatusOK, views.AdminPriceBookView(s.adminShell(c, "Price book", "price-book"), d))
}

// adminNames maps admin ids to e-mail addresses (for "published by").
func (s *Server) adminNames(ctx context.Context) map[string]string {
	out := map[string]string{}
	admins, err := s.store.FindAdmins(ctx)
	if err != nil {
		return out
	}
	for _, a := range admins {
		out[a.ID] = a.Email
	}
	return out
}

func publisherName(actor string, names map[string]string) string {
	a := billing.ParseActor(actor)
	switch {
	case a.Kind == "":
		return "CLI or API"
	case a.Kind == billing.ActorAdmin && names[a.ID] != "":
		return names[a.ID]
	}
	return actor
}

// GET /admin/price-book/draft (support and up; read-only for support).
func (s *Server) adminDraftPage(c echo.Context) error {
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	dr, err := ps.FindPriceBookDraft(c.Request().Context())
	if err != nil {
		return err
	}
	if dr == nil {
		return adminFlashTo(c, "info", "There is no draft: start one from the version in effect.", "/admin/price-book")
	}
	f := s.formOfBook(c, dr.Book)
	f.Rev, f.Base, f.Saved = dr.Rev, dr.BaseVersion, true
	return s.renderEditor(c, http.StatusOK, f)
}

func (s *Server) renderEditor(c echo.Context, status int, f views.PBForm) error {
	sh := s.adminShell(c, "Draft price book", "price-book")
	f.ReadOnly = !sh.Admin.CanWrite()
	if cur, err := s.prices.CurrentPriceBook(c.Request().Context()); err != nil {
		return err
	} else if cur != nil {
		f.Current = cur.Version
	}
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	return render(c, status, views.AdminDraftEditor(sh, f))
}

// formOfBook is the editor's form for a price book, with its margins.
func (s *Server) formOfBook(c echo.Context, pb billing.PriceBook) views.PBForm {
	fm := s.publicShell(c, "").Fmt // (adminShell would take the flash)
	cur := pb.Currency
	if cur == "" {
		cur = "usd"
	}
	credits := func(v billing.Credits) string {
		if v == 0 {
			return ""
		}
		return v.String()
	}
	f := views.PBForm{Currency: cur, Errors: map[string]string{}}
	for _, ft := range pb.Features {
		row := views.PBFeature{Key: ft.Key, Name: ft.Name, Unit: ft.Unit, Credits: ft.Credits.String(), UnitSize: strconv.FormatInt(max(ft.UnitSize, 1), 10),
			Description: ft.Description}
		if ft.Dimensional() {
			row.Credits = ""
		}
		if ft.Cost != nil {
			row.Cost = ft.Cost.PerMillion()
		}
		for _, d := range ft.Dimensions {
			dr := views.PBDim{Key: d.Key, Name: d.Name, Unit: d.Unit, Credits: d.Credits.String(), UnitSize: strconv.FormatInt(max(d.UnitSize, 1), 10)}
			if d.Cost != nil {
				dr.Cost = d.Cost.PerMillion()
			}
			row.Dims = append(row.Dims, dr)
		}
		f.Features = append(f.Features, row)
	}
	for _, p := range pb.Packs {
		f.Packs = append(f.Packs, views.PBPack{ID: p.ID, Name: p.Name, Price: fm.MoneyInput(p.Price), Credits: p.Credits.String(),
			Bonus: credits(p.Bonus), Active: p.IsActive()})
	}
	if ct := pb.CustomTopUp; ct != nil {
		f.Custom = views.PBCustom{Min: fm.MoneyInput(billing.Money{Amount: ct.Min, Currency: cur}),
			Max: fm.MoneyInput(billing.Money{Amount: ct.Max, Currency: cur}), Rate: credits(ct.CreditsPerUnit)}
	}
	for _, p := range pb.Plans {
		row := views.PBPlan{Key: p.Key, Name: p.Name, Interval: p.Interval, Price: fm.MoneyInput(p.Price), Credits: p.Credits.String(),
			Rollover: p.Rollover.Policy, RolloverMax: credits(p.Rollover.Max), Packs: p.Packs}
		if p.Rollover.Periods > 0 {
			row.RolloverPeriods = strconv.Itoa(p.Rollover.Periods)
		}
		if p.Priority != nil {
			row.Priority = strconv.Itoa(*p.Priority)
		}
		f.Plans = append(f.Plans, row)
	}
	f.Margins, f.MarginPacks = margins(pb)
	return f
}

// margins are the margin of every cost in pb at each pack on sale's
// credit price (billing.Margin).
func margins(pb billing.PriceBook) (map[string][]views.PBMargin, []billing.CreditPack) {
	packs := pb.ActivePacks()
	out := map[string][]views.PBMargin{}
	row := func(cost *billing.Cost, credits billing.Credits, unit int64) []views.PBMargin {
		var ms []views.PBMargin
		for _, p := range packs {
			m := views.PBMargin{Pack: p.Name, Text: "–"}
			if bps, ok := billing.Margin(cost, credits, unit, p); ok {
				m.Text, m.Low = views.PercentText(bps), bps < 0
			}
			ms = append(ms, m)
		}
		return ms
	}
	for i, f := range pb.Features {
		if f.Cost != nil {
			out[fmt.Sprintf("features[%d]", i)] = row(f.Cost, f.Credits, f.UnitSize)
		}
		for j, d := range f.Dimensions {
			if d.Cost != nil {
				out[fmt.Sprintf("features[%d].dimensions[%d]", i, j)] = row(d.Cost, d.Credits, d.UnitSize)
			}
		}
	}
	return out, packs
}

// formOfValues is the editor's form as submitted, every field as typed.
func formOfValues(v url.Values) views.PBForm {
	g := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	has := func(k string) bool { _, ok := v[k]; return ok }
	f := views.PBForm{Currency: strings.ToLower(g("currency")), Errors: map[string]string{}}
	f.Rev, _ = strconv.ParseInt(g("rev"), 10, 64)
	f.Base, _ = strconv.ParseInt(g("base"), 10, 64)
	for i := 0; i < maxEditorRows && has(fmt.Sprintf("features[%d].key", i)); i++ {
		p := fmt.Sprintf("features[%d].", i)
		row := views.PBFeature{Key: g(p + "key"), Name: g(p + "name"), Unit: g(p + "unit"), Credits: g(p + "credits"),
			UnitSize: g(p + "unit_size"), Cost: g(p + "cost"), Description: g(p + "description")}
		for j := 0; j < 50 && has(fmt.Sprintf("%sdimensions[%d].key", p, j)); j++ {
			q := fmt.Sprintf("%sdimensions[%d].", p, j)
			row.Dims = append(row.Dims, views.PBDim{Key: g(q + "key"), Name: g(q + "name"), Unit: g(q + "unit"), Credits: g(q + "credits"),
				UnitSize: g(q + "unit_size"), Cost: g(q + "cost")})
		}
		f.Features = append(f.Features, row)
	}
	for i := 0; i < maxEditorRows && has(fmt.Sprintf("packs[%d].id", i)); i++ {
		p := fmt.Sprintf("packs[%d].", i)
		f.Packs = append(f.Packs, views.PBPack{ID: g(p + "id"), Name: g(p + "name"), Price: g(p + "price"), Credits: g(p + "credits"),
			Bonus: g(p + "bonus_credits"), Active: has(p + "active")})
	}
	f.Custom = views.PBCustom{Min: g("custom_top_up.min"), Max: g("custom_top_up.max"), Rate: g("custom_top_up.credits_per_unit")}
	for i := 0; i < maxEditorRows && has(fmt.Sprintf("plans[%d].key", i)); i++ {
		p := fmt.Sprintf("plans[%d].", i)
		f.Plans = append(f.Plans, views.PBPlan{Key: g(p + "key"), Name: g(p + "name"), Interval: g(p + "interval"), Price: g(p + "price"),
			Credits: g(p + "credits"), Rollover: g(p + "rollover"), RolloverMax: g(p + "rollover_max"), RolloverPeriods: g(p + "rollover_periods"),
			Priority: g(p + "priority"), Packs: has(p + "packs")})
	}
	return f
}

// bookOfForm reads the editor's form into a price book. Numbers are read
// by the forms package (the reader's way of writing them); every field
// that cannot be read gets its error, all at once, and then the publish
// validation (billing.PriceBook.FieldErrors) adds its own beside the
// fields it names.
func bookOfForm(fm *forms.Form, f views.PBForm) (billing.PriceBook, map[string]string) {
	cur := f.Currency
	pb := billing.PriceBook{Currency: cur}
	if len(cur) != 3 {
		cur = "usd" // read amounts in some currency; validation names the field
	}
	credits := func(name string, required string) billing.Credits {
		if v := fm.Credits(name, forms.Opts{Required: required}); v != nil {
			return *v
		}
		return 0
	}
	whole := func(name string) int {
		if v := fm.Whole(name, forms.Opts{}); v != nil {
			return *v
		}
		return 0
	}
	money := func(name, required string) int64 {
		if v := fm.Money(name, cur, forms.Opts{Required: required}); v != nil {
			return *v
		}
		return 0
	}
	cost := func(name, typed string) *billing.Cost {
		if typed == "" {
			return nil
		}
		m, err := billing.ParseCostPerMillion(typed)
		if err != nil {
			fm.Fail(name, "Enter what a million units cost, such as 2.5 (at most 6 decimals).")
			return nil
		}
		return &billing.Cost{Currency: cur, Micros: m}
	}
	for i, r := range f.Features {
		p := fmt.Sprintf("features[%d].", i)
		ft := billing.Feature{Key: r.Key, Name: r.Name, Unit: r.Unit, Description: r.Description,
			UnitSize: int64(whole(p + "unit_size")), Cost: cost(p+"cost", r.Cost)}
		if len(r.Dims) == 0 {
			ft.Credits = credits(p+"credits", "Enter the credits per unit size, such as 1 or 2.5 (0 for free).")
		} else {
			ft.Credits = credits(p+"credits", "")
		}
		for j, d := range r.Dims {
			q := fmt.Sprintf("%sdimensions[%d].", p, j)
			ft.Dimensions = append(ft.Dimensions, billing.Dimension{Key: d.Key, Name: d.Name, Unit: d.Unit,
				Credits: credits(q+"credits", "Enter the credits per unit size (0 for free)."), UnitSize: int64(whole(q + "unit_size")), Cost: cost(q+"cost", d.Cost)})
		}
		pb.Features = append(pb.Features, ft)
	}
	pb.Packs = []billing.CreditPack{}
	for i, r := range f.Packs {
		p := fmt.Sprintf("packs[%d].", i)
		pk := billing.CreditPack{ID: r.ID, Name: r.Name, Price: billing.Money{Amount: money(p+"price", "Enter the pack's price, such as 10.00."), Currency: cur},
			Credits: credits(p+"credits", "Enter the credits the pack buys."), Bonus: credits(p+"bonus_credits", "")}
		if !r.Active {
			off := false
			pk.Active = &off
		}
		pb.Packs = append(pb.Packs, pk)
	}
	if c := f.Custom; c.Min != "" || c.Max != "" || c.Rate != "" {
		pb.CustomTopUp = &billing.CustomTopUp{Min: money("custom_top_up.min", "Enter the smallest custom amount, such as 5.00."),
			Max:            money("custom_top_up.max", "Enter the largest custom amount, such as 1000.00."),
			CreditsPerUnit: credits("custom_top_up.credits_per_unit", "")}
	}
	for i, r := range f.Plans {
		p := fmt.Sprintf("plans[%d].", i)
		pl := billing.Plan{Key: r.Key, Name: r.Name, Interval: r.Interval, Packs: r.Packs,
			Price:   billing.Money{Amount: money(p+"price", "Enter the plan's price per interval."), Currency: cur},
			Credits: credits(p+"credits", "Enter the credits included each period."),
			Rollover: billing.Rollover{Policy: r.Rollover, Max: credits(p+"rollover_max", ""),
				Periods: whole(p + "rollover_periods")}}
		if r.Priority != "" {
			v := whole(p + "priority")
			pl.Priority = &v
		}
		pb.Plans = append(pb.Plans, pl)
	}
	errs := map[string]string{}
	for k, v := range fm.Errors {
		errs[k] = v
	}
	for k, v := range pb.FieldErrors() {
		if _, ok := errs[k]; !ok {
			errs[k] = v
		}
	}
	return pb, errs
}

// POST /admin/price-book/draft (admins): save the draft, or add or remove
// a row (op), which shows the form again unsaved.
func (s *Server) adminDraftSave(c echo.Context) error {
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	fm := readForm(c)
	f := formOfValues(fm.Values)
	op := fm.Value("op")
	if op != "" && op != "save" {
		editRows(&f, op)
		return s.renderEditor(c, http.StatusOK, f)
	}
	pb, errs := bookOfForm(fm, f)
	if len(errs) > 0 {
		f.Errors = errs
		f.Margins, f.MarginPacks = margins(pb) // of what could be read
		return s.renderEditor(c, http.StatusUnprocessableEntity, f)
	}
	if f.Rev == 0 {
		// A save needs the revision the editor opened (a reload of a page
		// from before the draft existed, or a bare post).
		f.Errors = map[string]string{"": "This form is not from the draft editor: open the draft and make your change there."}
		return s.renderEditor(c, http.StatusUnprocessableEntity, f)
	}
	dr, err := ps.SavePriceBookDraft(s.audited(c, billing.AuditPriceBookDraftSaved, "", "", "", ""), pb, f.Base, f.Rev, billing.AdminActor(currentAdmin(c).User.ID))
	if err != nil {
		switch billing.ErrorCode(err) {
		case billing.CodeValidation:
			f.Errors = map[string]string{errorParam(err): billing.ErrorMessage(err)}
			return s.renderEditor(c, http.StatusUnprocessableEntity, f)
		case billing.CodeConflict:
			f.Errors = map[string]string{"": billing.ErrorMessage(err)}
			return s.renderEditor(c, http.StatusConflict, f)
		}
		return err
	}
	return adminFlashTo(c, "success", fmt.Sprintf("Draft saved: %s, %s, %s.", plural(len(dr.Book.Features), "feature"), plural(len(dr.Book.Packs), "credit pack"), plural(len(dr.Book.Plans), "plan")), "/admin/price-book/draft")
}

// editRows applies a row operation of the editor ("add-feature",
// "remove-pack-2", "add-dimension-0", "remove-dimension-0-1"...).
func editRows(f *views.PBForm, op string) {
	parts := strings.Split(op, "-")
	idx := func(k int) int {
		if k >= len(parts) {
			return -1
		}
		n, err := strconv.Atoi(parts[k])
		if err != nil {
			return -1
		}
		return n
	}
	in := func(i, n int) bool { return i >= 0 && i < n }
	switch {
	case op == "add-feature" && len(f.Features) < maxEditorRows:
		f.Features = append(f.Features, views.PBFeature{UnitSize: "1"})
	case op == "add-pack" && len(f.Packs) < maxEditorRows:
		f.Packs = append(f.Packs, views.PBPack{Active: true})
	case op == "add-plan" && len(f.Plans) < maxEditorRows:
		f.Plans = append(f.Plans, views.PBPlan{Interval: billing.IntervalMonth, Rollover: billing.RolloverNone})
	case strings.HasPrefix(op, "remove-feature-") && in(idx(2), len(f.Features)):
		f.Features = append(f.Features[:idx(2)], f.Features[idx(2)+1:]...)
	case strings.HasPrefix(op, "remove-pack-") && in(idx(2), len(f.Packs)):
		f.Packs = append(f.Packs[:idx(2)], f.Packs[idx(2)+1:]...)
	case strings.HasPrefix(op, "remove-plan-") && in(idx(2), len(f.Plans)):
		f.Plans = append(f.Plans[:idx(2)], f.Plans[idx(2)+1:]...)
	case strings.HasPrefix(op, "add-dimension-") && in(idx(2), len(f.Features)):
		ft := &f.Features[idx(2)]
		if len(ft.Dims) < 20 {
			if len(ft.Dims) == 0 {
				ft.Credits = ""
			}
			ft.Dims = append(ft.Dims, views.PBDim{UnitSize: "1"})
		}
	case strings.HasPrefix(op, "remove-dimension-") && in(idx(2), len(f.Features)):
		ft := &f.Features[idx(2)]
		if j := idx(3); in(j, len(ft.Dims)) {
			ft.Dims = append(ft.Dims[:j], ft.Dims[j+1:]...)
		}
	}
}

// POST /admin/price-book/draft/start (admins): a draft from the version
// in effect (or version from), when there is none.
func (s *Server) adminDraftStart(c echo.Context) error {
	ctx := c.Request().Context()
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	var from *billing.PriceBook
	if v := c.FormValue("from"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return billing.Errorf(billing.CodeNotFound, "No price book version %q.", v)
		}
		if from, err = ps.PriceBookVersion(ctx, n); err != nil {
			return err
		}
	} else if from, err = s.prices.CurrentPriceBook(ctx); err != nil {
		return err
	}
	book := billing.PriceBook{Currency: "usd", Features: []billing.Feature{{Key: "requests", Name: "Requests", Unit: "request", Credits: billing.Milli, UnitSize: 1}}}
	var base int64
	if from != nil {
		book, base = copyBook(*from), from.Version
	}
	if _, err := ps.SavePriceBookDraft(s.audited(c, billing.AuditPriceBookDraftSaved, "", "started a draft", "", ""), book, base, 0, billing.AdminActor(currentAdmin(c).User.ID)); err != nil {
		if billing.ErrorCode(err) == billing.CodeConflict {
			return adminFlashTo(c, "error", "A draft exists already: here it is. Discard it first to start again.", "/admin/price-book/draft")
		}
		return err
	}
	if base > 0 {
		adminFlash(c, "success", fmt.Sprintf("Started a draft from version %d.", base))
	} else {
		adminFlash(c, "success", "Started a draft. Nothing changes until you publish it.")
	}
	return c.Redirect(http.StatusSeeOther, "/admin/price-book/draft")
}

// copyBook is a version's content without its version, times and author.
func copyBook(pb billing.PriceBook) billing.PriceBook {
	out := pb.Clone()
	out.Version, out.PublishedAt, out.EffectiveAt, out.PublishedBy = 0, time.Time{}, nil, ""
	return out
}

// POST /admin/price-book/draft/discard (admins).
func (s *Server) adminDraftDiscard(c echo.Context) error {
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	if err := ps.DiscardPriceBookDraft(s.audited(c, billing.AuditPriceBookDraftDiscarded, "", "", "", "")); err != nil {
		return err
	}
	return adminFlashTo(c, "success", "Draft discarded. The price book in effect is unchanged.", "/admin/price-book")
}

// impactOf prices the last 30 days of usage with the version in effect
// and with next.
func (s *Server) impactOf(ctx context.Context, ps adminPriceBookStore, next billing.PriceBook) (views.AdminImpactPage, error) {
	var d views.AdminImpactPage
	cur, err := s.prices.CurrentPriceBook(ctx)
	if err != nil {
		return d, err
	}
	now := s.store.Now()
	usage, err := ps.UsageTotals(ctx, now.Add(-impactWindow))
	if err != nil {
		return d, err
	}
	all, err := ps.ListPriceBooks(ctx)
	if err != nil {
		return d, err
	}
	for _, pb := range all {
		// A cancelled version never takes effect: no warning about it.
		if pb.EffectiveAt != nil && pb.EffectiveAt.After(now) && pb.CancelledAt == nil {
			d.Pending = append(d.Pending, pb)
		}
	}
	d.Impact = billing.PreviewImpact(usage, cur, &next, impactTop)
	d.Impact.Since, d.Impact.Until = now.Add(-impactWindow), now
	if cur != nil {
		d.Current = cur.Version
	}
	d.Names = map[string]billing.Customer{}
	for _, ci := range d.Impact.Top {
		if cu, err := s.ledger.FindCustomer(ctx, ci.Customer); err == nil {
			d.Names[ci.Customer] = cu
		}
	}
	return d, nil
}

// GET /admin/price-book/draft/impact (support and up).
func (s *Server) adminDraftImpact(c echo.Context) error {
	ctx := c.Request().Context()
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	dr, err := ps.FindPriceBookDraft(ctx)
	if err != nil {
		return err
	}
	if dr == nil {
		return adminFlashTo(c, "info", "There is no draft to preview.", "/admin/price-book")
	}
	d, err := s.impactOf(ctx, ps, dr.Book)
	if err != nil {
		return err
	}
	d.Candidate = "the draft"
	return render(c, http.StatusOK, views.AdminImpactView(s.adminShell(c, "Impact preview", "price-book"), d))
}

// publishWhen reads when a confirmed publish takes effect: now, or a
// later UTC time typed as 2006-01-02T15:04 (what a datetime-local field
// sends).
func (s *Server) publishWhen(cf *views.AdminPublishConfirm, c echo.Context) (time.Time, bool) {
	cf.When, cf.At = c.FormValue("when"), strings.TrimSpace(c.FormValue("at"))
	cf.Reason = strings.TrimSpace(c.FormValue("reason"))
	cf.Errors = map[string]string{}
	if len(cf.Reason) > 500 {
		cf.Errors["reason"] = "Keep the note under 500 characters."
	}
	var at time.Time
	switch cf.When {
	case "now":
		if cf.At != "" {
			cf.Errors["when"] = "You entered a time: choose \u201cAt a later time\u201d to schedule the version then, or clear the time to publish now."
		}
	case "later":
		t, err := time.ParseInLocation("2006-01-02T15:04", cf.At, time.UTC)
		if err != nil { // some browsers send seconds
			t, err = time.ParseInLocation("2006-01-02T15:04:05", cf.At, time.UTC)
		}
		switch {
		case cf.At == "":
			cf.Errors["at"] = "Enter when the version takes effect (UTC)."
		case err != nil:
			cf.Errors["at"] = "Enter a date and time such as 2030-01-31T09:00 (UTC)."
		case !t.After(s.store.Now()):
			cf.Errors["at"] = "Enter a time in the future, or publish now."
		case t.After(s.store.Now().AddDate(5, 0, 0)):
			cf.Errors["at"] = "Enter a time within five years."
		}
		at = t
	default:
		cf.Errors["when"] = "Choose now or a later time."
	}
	return at, len(cf.Errors) == 0
}

// POST /admin/price-book/draft/publish (admins). Without confirm=1 it
// shows what the draft would change (the impact preview) and asks when;
// the confirmed form names the draft revision it saw, so a draft changed
// since is not published unseen, and the revision is consumed with the
// publish, so a second press publishes nothing more.
func (s *Server) adminDraftPublish(c echo.Context) error {
	ctx := c.Request().Context()
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	dr, err := ps.FindPriceBookDraft(ctx)
	if err != nil {
		return err
	}
	if dr == nil {
		return adminFlashTo(c, "info", "There is no draft to publish (it may have been published already).", "/admin/price-book")
	}
	rev, _ := strconv.ParseInt(c.FormValue("rev"), 10, 64)
	if rev != dr.Rev {
		return adminFlashTo(c, "error", "The draft changed since you opened it: review it again before publishing. Nothing was published.", "/admin/price-book/draft")
	}
	cf := &views.AdminPublishConfirm{Action: "/admin/price-book/draft/publish", Verb: "Publish", Rev: dr.Rev, When: "now"}
	page := func(status int) error {
		d, err := s.impactOf(ctx, ps, dr.Book)
		if err != nil {
			return err
		}
		d.Confirm, d.Candidate = cf, "the draft"
		return render(c, status, views.AdminImpactView(s.adminShell(c, "Confirm publish", "price-book"), d))
	}
	if c.FormValue("confirm") != "1" {
		return page(http.StatusOK)
	}
	at, ok := s.publishWhen(cf, c)
	if !ok {
		return page(http.StatusUnprocessableEntity)
	}
	action := billing.AuditPriceBookPublished
	if !at.IsZero() {
		action = billing.AuditPriceBookScheduled
	}
	out, changed, err := ps.PublishPriceBookWith(ctx, dr.Book, db.PublishOptions{EffectiveAt: at, Actor: billing.AdminActor(currentAdmin(c).User.ID),
		Audit: action, Reason: cf.Reason, DraftRev: dr.Rev})
	if err != nil {
		if billing.ErrorCode(err) == billing.CodeConflict {
			return adminFlashTo(c, "error", billing.ErrorMessage(err), "/admin/price-book")
		}
		return err
	}
	return s.publishedFlash(c, out, changed)
}

func (s *Server) publishedFlash(c echo.Context, out billing.PriceBook, changed bool) error {
	return s.publishedFlashOf(c, out, changed, 0)
}

// publishedFlashOf says what was published; rollbackOf names the version a
// rollback copied (0: not a rollback).
func (s *Server) publishedFlashOf(c echo.Context, out billing.PriceBook, changed bool, rollbackOf int64) error {
	contents := plural(len(out.Features), "feature") + ", " + plural(len(out.Packs), "credit pack") + ", " + plural(len(out.Plans), "plan")
	switch {
	case changed && rollbackOf > 0 && out.EffectiveAt != nil && out.EffectiveAt.After(out.PublishedAt):
		adminFlash(c, "success", fmt.Sprintf("Scheduled the rollback to version %d as version %d (%s): it takes effect on %s UTC; until then the version in effect stays.",
			rollbackOf, out.Version, contents, out.EffectiveAt.UTC().Format("2 Jan 2006 15:04")))
	case changed && rollbackOf > 0:
		adminFlash(c, "success", fmt.Sprintf("Rolled back to version %d: its prices are published as version %d (%s). New usage is priced with them from now on.",
			rollbackOf, out.Version, contents))
	case !changed:
		adminFlash(c, "info", fmt.Sprintf("Nothing to publish: version %d, in effect, is this price book already.", out.Version))
	case out.EffectiveAt != nil && out.EffectiveAt.After(out.PublishedAt):
		adminFlash(c, "success", fmt.Sprintf("Scheduled version %d: it takes effect on %s UTC; until then the version in effect stays.", out.Version,
			out.EffectiveAt.UTC().Format("2 Jan 2006 15:04")))
	default:
		adminFlash(c, "success", fmt.Sprintf("Published version %d: %s. New usage is priced with it from now on.", out.Version, contents))
	}
	return c.Redirect(http.StatusSeeOther, "/admin/price-book")
}

// versionParam is the price-book version the path names (:version), with
// the store: not found for a number that names none.
func (s *Server) versionParam(c echo.Context) (adminPriceBookStore, *billing.PriceBook, error) {
	ps, err := s.priceBookStore()
	if err != nil {
		return nil, nil, err
	}
	v, err := strconv.ParseInt(c.Param("version"), 10, 64)
	if err != nil || v < 1 {
		return nil, nil, billing.Errorf(billing.CodeNotFound, "No price book version %q.", c.Param("version"))
	}
	pb, err := ps.PriceBookVersion(c.Request().Context(), v)
	if err != nil {
		return nil, nil, err
	}
	return ps, pb, nil
}

// POST /admin/price-book/versions/:version/rollback (admins): publish a
// copy of an earlier version, after the same confirmation as a publish.
func (s *Server) adminVersionRollback(c echo.Context) error {
	ctx := c.Request().Context()
	ps, old, err := s.versionParam(c)
	if err != nil {
		return err
	}
	v := old.Version
	book := copyBook(*old)
	cf := &views.AdminPublishConfirm{Action: fmt.Sprintf("/admin/price-book/versions/%d/rollback", v), Verb: "Roll back", When: "now", Version: v}
	page := func(status int) error {
		d, err := s.impactOf(ctx, ps, book)
		if err != nil {
			return err
		}
		d.Confirm, d.Candidate = cf, fmt.Sprintf("version %d", v)
		return render(c, status, views.AdminImpactView(s.adminShell(c, "Confirm roll back", "price-book"), d))
	}
	if c.FormValue("confirm") != "1" {
		return page(http.StatusOK)
	}
	at, ok := s.publishWhen(cf, c)
	if !ok {
		return page(http.StatusUnprocessableEntity)
	}
	reason := fmt.Sprintf("A copy of version %d.", v)
	if cf.Reason != "" {
		reason += " " + cf.Reason
	}
	out, changed, err := ps.PublishPriceBookWith(ctx, book, db.PublishOptions{EffectiveAt: at, Actor: billing.AdminActor(currentAdmin(c).User.ID),
		Audit: billing.AuditPriceBookRolledBack, Reason: reason})
	if err != nil {
		return err
	}
	if !changed {
		return adminFlashTo(c, "info", fmt.Sprintf("Version %d's prices are in effect already (as version %d): nothing was published.", v, out.Version), "/admin/price-book")
	}
	return s.publishedFlashOf(c, out, changed, v)
}

// POST /admin/price-book/versions/:version/cancel (admins): cancel a
// version scheduled for later, after a confirmation; the version in effect
// stays until another takes over.
func (s *Server) adminVersionCancel(c echo.Context) error {
	ctx := c.Request().Context()
	ps, pb, err := s.versionParam(c)
	if err != nil {
		return err
	}
	v := pb.Version
	if c.FormValue("confirm") != "1" {
		when := "later"
		if pb.EffectiveAt != nil {
			when = pb.EffectiveAt.UTC().Format("2 Jan 2006 15:04") + " UTC"
		}
		return render(c, http.StatusOK, views.AdminConfirmActionView(s.adminShell(c, "Cancel a scheduled version", "price-book"), views.AdminConfirmAction{
			Heading: fmt.Sprintf("Cancel version %d?", v),
			Message: fmt.Sprintf("Version %d is scheduled to take effect on %s. Cancelled, it never takes effect, and the prices in effect stay until another version takes over. The version stays in the history, marked cancelled; its number is not used again.", v, when),
			Action:  fmt.Sprintf("/admin/price-book/versions/%d/cancel", v), Button: fmt.Sprintf("Cancel version %d", v), Cancel: "/admin/price-book",
			CancelLabel: fmt.Sprintf("Keep version %d", v), Danger: true}))
	}
	if _, err := ps.CancelScheduledPriceBook(ctx, v, billing.AdminActor(currentAdmin(c).User.ID), ""); err != nil {
		if billing.ErrorCode(err) == billing.CodeConflict {
			return adminFlashTo(c, "error", billing.ErrorMessage(err), "/admin/price-book")
		}
		return err
	}
	return adminFlashTo(c, "success", fmt.Sprintf("Cancelled version %d: it will not take effect. The prices in effect are unchanged.", v), "/admin/price-book")
}

// exportBody is a price book as `tally pricebook publish --file` reads it.
type exportBody struct {
	Currency    string               `json:"currency"`
	Features    []billing.Feature    `json:"features"`
	Packs       []billing.CreditPack `json:"packs"`
	Plans       []billing.Plan       `json:"plans,omitempty"`
	CustomTopUp *billing.CustomTopUp `json:"custom_top_up,omitempty"`
}

func exportJSON(c echo.Context, pb billing.PriceBook, name string) error {
	if pb.Packs == nil {
		pb.Packs = []billing.CreditPack{}
	}
	b, err := json.MarshalIndent(exportBody{Currency: pb.Currency, Features: pb.Features, Packs: pb.Packs, Plans: pb.Plans, CustomTopUp: pb.CustomTopUp}, "", "  ")
	if err != nil {
		return err
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	return c.Blob(http.StatusOK, "application/json", append(b, '\n'))
}

// GET /admin/price-book/draft/export (support and up): the draft as JSON.
func (s *Server) adminDraftExport(c echo.Context) error {
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	dr, err := ps.FindPriceBookDraft(c.Request().Context())
	if err != nil {
		return err
	}
	if dr == nil {
		return billing.Errorf(billing.CodeNotFound, "There is no draft.")
	}
	return exportJSON(c, dr.Book, "price-book-draft.json")
}

// GET /admin/price-book/versions/:version/export (support and up).
func (s *Server) adminVersionExport(c echo.Context) error {
	_, pb, err := s.versionParam(c)
	if err != nil {
		return err
	}
	return exportJSON(c, *pb, fmt.Sprintf("price-book-v%d.json", pb.Version))
}

// uploaded reads a form's file (at most the request's body limit).
func uploaded(c echo.Context, field string) ([]byte, string) {
	fh, err := c.FormFile(field)
	if err != nil {
		return nil, "Choose a JSON file."
	}
	f, err := fh.Open()
	if err != nil {
		return nil, "The file could not be read: upload it again."
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxUpload+1))
	if err != nil {
		return nil, "The file could not be read: upload it again."
	}
	if len(b) > MaxUpload {
		return nil, fmt.Sprintf("The file is larger than %d MiB.", MaxUpload>>20)
	}
	return b, ""
}

// editorWithError shows the stored draft's editor with an error beside
// one of the import fields.
func (s *Server) editorWithError(c echo.Context, ps adminPriceBookStore, errs map[string]string, vals map[string]string) error {
	dr, err := ps.FindPriceBookDraft(c.Request().Context())
	if err != nil {
		return err
	}
	var f views.PBForm
	if dr != nil {
		f = s.formOfBook(c, dr.Book)
		f.Rev, f.Base, f.Saved = dr.Rev, dr.BaseVersion, true
	}
	f.Errors = errs
	f.ImportValues = vals
	return s.renderEditor(c, http.StatusUnprocessableEntity, f)
}

// POST /admin/price-book/draft/import (admins): a JSON price book (the
// format of `tally pricebook publish --file`) becomes the draft.
func (s *Server) adminDraftImport(c echo.Context) error {
	ctx := c.Request().Context()
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	b, msg := uploaded(c, "file")
	if msg != "" {
		return s.editorWithError(c, ps, map[string]string{"import.file": msg}, nil)
	}
	var pb billing.PriceBook
	if err := DecodeJSON(strings.NewReader(string(b)), &pb); err != nil {
		return s.editorWithError(c, ps, map[string]string{"import.file": "Not a price book: " + billing.ErrorMessage(err)}, nil)
	}
	pb = copyBook(pb)
	dr, err := ps.FindPriceBookDraft(ctx)
	if err != nil {
		return err
	}
	var base, rev int64
	if dr != nil {
		base, rev = dr.BaseVersion, dr.Rev
	} else if cur, err := s.prices.CurrentPriceBook(ctx); err != nil {
		return err
	} else if cur != nil {
		base = cur.Version
	}
	if _, err := ps.SavePriceBookDraft(s.audited(c, billing.AuditPriceBookDraftImported, "", "a price book file", "", ""), pb, base, rev, billing.AdminActor(currentAdmin(c).User.ID)); err != nil {
		if code := billing.ErrorCode(err); code == billing.CodeValidation || code == billing.CodeConflict {
			return s.editorWithError(c, ps, map[string]string{"import.file": "Not imported: " + billing.ErrorMessage(err)}, nil)
		}
		return err
	}
	return adminFlashTo(c, "success", fmt.Sprintf("Imported %s into the draft: %s, %s, %s.", fh(c), plural(len(pb.Features), "feature"),
		plural(len(pb.Packs), "credit pack"), plural(len(pb.Plans), "plan")), "/admin/price-book/draft")
}

func fh(c echo.Context) string {
	if f, err := c.FormFile("file"); err == nil {
		return f.Filename
	}
	return "the file"
}

// POST /admin/price-book/draft/import-costs (admins): provider costs in
// LiteLLM's layout price the models the filter names, at a margin at a
// pack's credit price (billing.ImportProviderCosts), into the draft.
func (s *Server) adminDraftImportCosts(c echo.Context) error {
	ctx := c.Request().Context()
	ps, err := s.priceBookStore()
	if err != nil {
		return err
	}
	dr, err := ps.FindPriceBookDraft(ctx)
	if err != nil {
		return err
	}
	if dr == nil {
		return adminFlashTo(c, "info", "Start a draft first: provider costs are imported into it.", "/admin/price-book")
	}
	vals := map[string]string{"models": strings.TrimSpace(c.FormValue("models")), "margin": strings.TrimSpace(c.FormValue("margin")), "pack": c.FormValue("pack")}
	errs := map[string]string{}
	bps, err := billing.ParseMarginPercent(vals["margin"])
	if err != nil {
		errs["costs.margin"] = billing.ErrorMessage(err)
	}
	pack, ok := dr.Book.Pack(vals["pack"])
	if !ok {
		errs["costs.pack"] = "Choose the pack whose credit price the margin is for."
	}
	if vals["models"] == "" {
		errs["costs.models"] = "Name the models, such as gpt-4o, claude-3-5-sonnet*, or * for every model in the file."
	}
	b, msg := uploaded(c, "file")
	if msg != "" {
		errs["costs.file"] = msg
	}
	if len(errs) > 0 {
		return s.editorWithError(c, ps, errs, vals)
	}
	prices, err := billing.ReadProviderPrices(strings.NewReader(string(b)))
	if err != nil {
		return s.editorWithError(c, ps, map[string]string{"costs.file": billing.ErrorMessage(err)}, vals)
	}
	models, bad := matchModels(prices, vals["models"])
	switch {
	case bad != "":
		return s.editorWithError(c, ps, map[string]string{"costs.models": bad}, vals)
	case len(models) == 0:
		return s.editorWithError(c, ps, map[string]string{"costs.models": "No model in the file matches: use the file's model names (gpt-4o), or * as a wildcard."}, vals)
	case len(models) > 200:
		return s.editorWithError(c, ps, map[string]string{"costs.models": fmt.Sprintf("%d models match: narrow the filter to at most 200.", len(models))}, vals)
	}
	features, err := billing.ImportProviderCosts(dr.Book.Features, prices, billing.ImportRequest{Models: models, MarginBps: bps, Pack: pack})
	if err != nil {
		return s.editorWithError(c, ps, map[string]string{"costs.models": billing.ErrorMessage(err)}, vals)
	}
	next := dr.Book.Clone()
	next.Features = features
	if _, err := ps.SavePriceBookDraft(s.audited(c, billing.AuditPriceBookDraftImported, "", "provider costs: "+strings.Join(models, ", "), "", ""), next, dr.BaseVersion, dr.Rev, billing.AdminActor(currentAdmin(c).User.ID)); err != nil {
		if code := billing.ErrorCode(err); code == billing.CodeValidation || code == billing.CodeConflict {
			return s.editorWithError(c, ps, map[string]string{"costs.models": "Not imported: " + billing.ErrorMessage(err)}, vals)
		}
		return err
	}
	return adminFlashTo(c, "success", fmt.Sprintf("Priced %s from provider costs at a %s margin at %s's credit price. Review and save, then preview the impact.",
		plural(len(models), "model"), views.PercentText(bps), pack.Name), "/admin/price-book/draft")
}

// matchModels are the file's models the filter names: comma-separated
// names or patterns with * (path.Match), sorted.
func matchModels(prices map[string]billing.ProviderModel, filter string) ([]string, string) {
	var pats []string
	for _, p := range strings.Split(filter, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Sprintf("%q is not a pattern: use names and * only.", p)
			}
			if !strings.ContainsAny(p, "*?[") {
				if _, ok := prices[p]; !ok {
					return nil, fmt.Sprintf("Model %q is not in the file.", p)
				}
			}
			pats = append(pats, p)
		}
	}
	var out []string
	for name, m := range prices {
		for _, p := range pats {
			if p == name {
				out = append(out, name) // named: priced, or told why not
				break
			}
			// A pattern takes the models priced per token only.
			if ok, _ := path.Match(p, name); ok && (m.InputPerToken != "" || m.OutputPerToken != "") {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out, ""
}
