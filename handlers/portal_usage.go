package handlers

import (
	"context"
	"encoding/csv"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// Page sizes of the portal's histories. The CSV export reads the largest
// page the store gives.
const (
	usagePageSize  = 50
	csvPageSize    = 100
	maxTagKeyBytes = 40 // as billing.CheckMetadata allows
)

// usageFilters reads the usage page's filters (feature, from, to, tag,
// value, cursor) into the form's values and the store's filter. Dates are
// days in the customer's time zone, both inclusive. The customer is always
// the signed-in one: no parameter can name another.
func usageFilters(c echo.Context, loc *time.Location) (views.UsageFilter, billing.EntryFilter, map[string]string) {
	q := c.QueryParams()
	in := views.UsageFilter{
		Feature:  strings.TrimSpace(q.Get("feature")),
		From:     strings.TrimSpace(q.Get("from")),
		To:       strings.TrimSpace(q.Get("to")),
		TagKey:   strings.TrimSpace(q.Get("tag")),
		TagValue: strings.TrimSpace(q.Get("value")),
	}
	f := billing.EntryFilter{Customer: currentCustomer(c).CustomerID, Type: billing.EntryDebit, Feature: in.Feature,
		Cursor: q.Get("cursor")}
	errs := map[string]string{}
	day := func(field, label, s string) *time.Time {
		if s == "" {
			return nil
		}
		t, err := time.ParseInLocation(time.DateOnly, s, loc)
		if err != nil {
			errs[field] = label + " must be a date such as 2026-03-01."
			return nil
		}
		return &t
	}
	f.From = day("from", "The start date", in.From)
	if to := day("to", "The end date", in.To); to != nil {
		end := to.AddDate(0, 0, 1) // the whole last day
		f.To = &end
	}
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		errs["to"] = "The end date is before the start date."
	}
	if in.TagApplied() {
		// The store puts the key in a JSON path, where a quote or backslash
		// would be syntax; metadata keys people use never have them.
		if len(in.TagKey) > maxTagKeyBytes || strings.ContainsAny(in.TagKey, `"\`) {
			errs["tag"] = "A tag name has at most 40 characters and no quotes or backslashes."
		} else {
			f.TagKey, f.TagValue = in.TagKey, in.TagValue
		}
	}
	return in, f, errs
}

// htmxPart says what an htmx request wants: "" for a whole page (no htmx,
// or htmx restoring a page from history), else the id of its target.
func htmxPart(c echo.Context) (partial bool, target string) {
	h := c.Request().Header
	if h.Get("HX-Request") != "true" || h.Get("HX-History-Restore-Request") == "true" {
		return false, ""
	}
	return true, h.Get("HX-Target")
}

// GET /portal/usage: the customer's debits, filtered and paginated. An htmx
// request gets the results alone, or for "Load more" the next rows alone.
func (s *Server) usagePage(c echo.Context) error {
	ctx := c.Request().Context()
	c.Response().Header().Add(echo.HeaderVary, "HX-Request")
	fm := s.publicShell(c, "").Fmt
	in, f, errs := usageFilters(c, fm.Loc)
	cid := f.Customer
	now, err := s.ledgerNow(ctx, cid)
	if err != nil {
		return err
	}
	d := views.UsageData{Filter: in, Cursor: f.Cursor, Errors: errs, Today: now.In(fm.Loc).Format(time.DateOnly), Now: now}
	status := http.StatusOK
	cat := newFeatureCatalog(ctx, s.prices)
	if len(errs) > 0 {
		status = http.StatusUnprocessableEntity
	} else {
		f.Limit = usagePageSize
		es, next, err := s.ledger.FindEntries(ctx, f)
		if err != nil {
			return err
		}
		if d.Rows, err = cat.rows(es); err != nil {
			return err
		}
		d.Next = next
	}
	partial, target := htmxPart(c)
	if partial && target == "usage-more" && len(errs) == 0 {
		return render(c, status, views.UsageRows(fm, d))
	}
	facets, err := s.portal.FindUsageFacets(ctx, cid)
	if err != nil {
		return err
	}
	if d.Features, err = cat.options(facets.Features, in.Feature); err != nil {
		return err
	}
	d.TagKeys, d.TagValues = tagChoices(facets.Tags, in.TagKey)
	if partial {
		return render(c, status, views.UsageResultsSwap(fm, d))
	}
	sh, err := s.shell(c, "Usage", "usage")
	if err != nil {
		return err
	}
	return render(c, status, views.UsagePage(sh, d))
}

// ledgerNow is the ledger's clock, as of which balances are read: what
// lots' expiry dates are compared with, and what "today" is.
func (s *Server) ledgerNow(ctx context.Context, customerID string) (time.Time, error) {
	b, err := s.ledger.Balance(ctx, customerID)
	return b.AsOf, err
}

// tagChoices are the tag keys to offer (those seen, plus the chosen one)
// and the values seen for the chosen key.
func tagChoices(tags map[string][]string, chosen string) (keys, values []string) {
	for k := range tags {
		keys = append(keys, k)
	}
	if _, ok := tags[chosen]; chosen != "" && !ok {
		keys = append(keys, chosen)
	}
	sort.Strings(keys)
	return keys, tags[chosen]
}

// GET /portal/usage.csv streams the whole filtered history as CSV, page by
// page, flushing as it goes: memory stays flat however long the history is.
func (s *Server) usageCSV(c echo.Context) error {
	ctx := c.Request().Context()
	fm := s.publicShell(c, "").Fmt
	in, f, errs := usageFilters(c, fm.Loc)
	if len(errs) > 0 {
		return billing.Errorf(billing.CodeValidation, "%s", strings.Join(mapValues(errs), " "))
	}
	f.Cursor, f.Limit = "", csvPageSize
	cu, err := s.ledger.FindCustomer(ctx, f.Customer)
	if err != nil {
		return err
	}
	now, err := s.ledgerNow(ctx, f.Customer)
	if err != nil {
		return err
	}
	// The first page is read before anything is sent, so an error there is
	// still an ordinary error page.
	es, next, err := s.ledger.FindEntries(ctx, f)
	if err != nil {
		return err
	}
	cat := newFeatureCatalog(ctx, s.prices)
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	w.Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+csvFilename(cu, in, now.In(fm.Loc))+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w.Writer)
	cw := csv.NewWriter(w)
	cw.Write([]string{"time_utc", "time_local", "entry_id", "feature", "feature_name", "quantity", "unit", "credits",
		"price_version", "metadata", "lots_burned", "lots_burned_from"})
	for {
		for _, e := range es {
			ft, err := cat.feature(e.PriceVersion, e.Feature)
			if err != nil {
				return s.csvFailed(c, err)
			}
			cw.Write(usageCSVRecord(e, ft, fm.Loc))
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return nil // the client went away
		}
		// Each page gets the server's usual write timeout afresh: a long
		// export keeps going, a stalled client is still cut.
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := rc.Flush(); err != nil {
			return nil
		}
		if next == "" {
			return nil
		}
		f.Cursor = next
		if es, next, err = s.ledger.FindEntries(ctx, f); err != nil {
			return s.csvFailed(c, err)
		}
	}
}

// csvFailed ends an export that broke after its first rows were sent: the
// status is gone, so the error is logged and the body cut short.
func (s *Server) csvFailed(c echo.Context, err error) error {
	if c.Request().Context().Err() == nil {
		s.log.Error("usage export failed", "err", err, "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	return nil
}

// usageCSVRecord is one debit as a CSV row.
func usageCSVRecord(e billing.Entry, ft billing.Feature, loc *time.Location) []string {
	qty, unit := "", ft.Unit
	if e.Quantity != nil {
		qty = e.Quantity.String()
	}
	if len(e.Breakdown) > 0 {
		// A feature priced per dimension: "input_tokens=1200; output_tokens=350".
		parts := make([]string, len(e.Breakdown))
		for i, l := range e.Breakdown {
			parts[i] = l.Dimension + "=" + l.Quantity.String()
		}
		qty, unit = strings.Join(parts, "; "), "per dimension"
	}
	keys := make([]string, 0, len(e.Metadata))
	for k := range e.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	meta := make([]string, len(keys))
	for i, k := range keys {
		meta[i] = k + "=" + e.Metadata[k]
	}
	lots := make([]string, len(e.Burns))
	from := make([]string, len(e.Burns))
	for i, b := range e.Burns {
		lots[i] = b.Lot + "=" + b.Credits.String()
		from[i] = b.Reason
		if from[i] == "" {
			from[i] = b.Source
		}
		if b.ExpiresAt != nil {
			from[i] += " (expires " + b.ExpiresAt.UTC().Format(time.RFC3339) + ")"
		}
	}
	return []string{
		e.CreatedAt.UTC().Format(time.RFC3339Nano),
		e.CreatedAt.In(loc).Format(time.RFC3339Nano),
		e.ID,
		csvText(e.Feature),
		csvText(ft.Name),
		qty,
		csvText(unit),
		(-e.Amount).String(),
		strconv.FormatInt(e.PriceVersion, 10),
		csvText(strings.Join(meta, "; ")),
		strings.Join(lots, "; "),
		csvText(strings.Join(from, "; ")),
	}
}

// csvText keeps a spreadsheet from reading text as a formula (OWASP: CSV
// injection): metadata and reasons come from other people.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

var unsafeFilename = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// csvFilename names an export after the customer and the period:
// usage-acme-robotics-2026-03-01-to-2026-03-10.csv.
func csvFilename(cu billing.Customer, in views.UsageFilter, today time.Time) string {
	name := strings.Trim(unsafeFilename.ReplaceAllString(cu.ExternalID, "-"), "-.")
	if name == "" || len(name) > 60 {
		name = cu.ID
	}
	var period string
	switch {
	case in.From != "" && in.To != "":
		period = in.From + "-to-" + in.To
	case in.From != "":
		period = in.From + "-to-" + today.Format(time.DateOnly)
	case in.To != "":
		period = "to-" + in.To
	default:
		period = today.Format(time.DateOnly)
	}
	parts := []string{"usage", name, period}
	if in.Feature != "" {
		parts = append(parts, in.Feature)
	}
	if in.TagApplied() {
		parts = append(parts, in.TagKey, in.TagValue)
	}
	out := unsafeFilename.ReplaceAllString(strings.Join(parts, "-"), "-")
	if len(out) > 150 {
		out = out[:150]
	}
	return out + ".csv"
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// featureCatalog names features as the price book that priced each debit
// did, reading each version once per request.
type featureCatalog struct {
	ctx      context.Context
	prices   billing.PriceBooks
	versions map[int64]*billing.PriceBook
	current  *billing.PriceBook
	loaded   bool
}

func newFeatureCatalog(ctx context.Context, prices billing.PriceBooks) *featureCatalog {
	return &featureCatalog{ctx: ctx, prices: prices, versions: map[int64]*billing.PriceBook{}}
}

func (fc *featureCatalog) currentBook() (*billing.PriceBook, error) {
	if !fc.loaded {
		pb, err := fc.prices.CurrentPriceBook(fc.ctx)
		if err != nil {
			return nil, err
		}
		fc.current, fc.loaded = pb, true
	}
	return fc.current, nil
}

// feature is key's feature in price book version v, else in the current
// one, else a stand-in named by its key.
func (fc *featureCatalog) feature(v int64, key string) (billing.Feature, error) {
	pb, ok := fc.versions[v]
	if !ok && v > 0 {
		var err error
		pb, err = fc.prices.PriceBookVersion(fc.ctx, v)
		if err != nil && billing.ErrorCode(err) != billing.CodeNotFound {
			return billing.Feature{}, err
		}
		fc.versions[v] = pb
	}
	if ft, ok := pb.Feature(key); ok {
		return ft, nil
	}
	cur, err := fc.currentBook()
	if err != nil {
		return billing.Feature{}, err
	}
	if ft, ok := cur.Feature(key); ok {
		return ft, nil
	}
	return billing.Feature{Key: key, Name: key}, nil
}

// rows are entries with their features' names and units.
func (fc *featureCatalog) rows(es []billing.Entry) ([]views.UsageRow, error) {
	out := make([]views.UsageRow, len(es))
	for i, e := range es {
		ft, err := fc.feature(e.PriceVersion, e.Feature)
		if err != nil {
			return nil, err
		}
		out[i] = views.UsageRow{Entry: e, FeatureName: ft.Name, Unit: ft.Unit}
	}
	return out, nil
}

// options are the feature select's choices: the current price book's
// features in its order, then any others the customer has used (and the
// chosen one, so the form never shows a filter other than the one applied).
func (fc *featureCatalog) options(used []string, chosen string) ([]views.UsageOption, error) {
	cur, err := fc.currentBook()
	if err != nil {
		return nil, err
	}
	var out []views.UsageOption
	seen := map[string]bool{}
	if cur != nil {
		for _, ft := range cur.Features {
			out = append(out, views.UsageOption{Value: ft.Key, Label: ft.Name})
			seen[ft.Key] = true
		}
	}
	for _, k := range slices.Concat(used, []string{chosen}) {
		if k != "" && !seen[k] {
			out = append(out, views.UsageOption{Value: k, Label: k + " (not in the current price book)"})
			seen[k] = true
		}
	}
	return out, nil
}
