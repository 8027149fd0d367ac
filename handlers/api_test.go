package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/tally-billing/tally/internal/storetest"
	"golang.org/x/crypto/bcrypt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
)

// testStart is the fixed time the test clock starts at: a Tuesday in the
// middle of a month, so day and month spend differ and nothing straddles a
// boundary.
var testStart = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// testClock is a clock the tests move by hand (db.Options.Now).
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testPriceBook is a small copy of the demo price book.
func testPriceBook() billing.PriceBook {
	return billing.PriceBook{
		Currency: "usd",
		Features: []billing.Feature{
			{Key: "chat.request", Name: "Chat request", Unit: "request", Credits: billing.CreditsOf(1), UnitSize: 1},
			{Key: "image.generate", Name: "Image generation", Unit: "image", Credits: billing.CreditsOf(5), UnitSize: 1},
			{Key: "document.analyze", Name: "Document analysis", Unit: "document", Credits: billing.CreditsOf(10), UnitSize: 1},
			{Key: "gpt-4o.tokens", Name: "GPT-4o tokens", Unit: "token", Credits: 2500, UnitSize: 1000},
		},
		Packs: []billing.CreditPack{
			{ID: "pack_1000", Name: "Starter", Credits: billing.CreditsOf(1000), Price: billing.Money{Amount: 10_00, Currency: "usd"}},
			{ID: "pack_5500", Name: "Growth", Credits: billing.CreditsOf(5500), Price: billing.Money{Amount: 50_00, Currency: "usd"}},
		},
	}
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testAPI is a running Tally API over a real SQLite file.
type testAPI struct {
	DB     *db.DB
	Server *handlers.Server
	HTTP   *httptest.Server
	Clock  *testClock
	Log    *syncBuffer

	Admin, Meter, Portal, Read             string // secrets
	AdminKey, MeterKey, PortalKey, ReadKey billing.APIKey
}

// apiOptions changes what newTestAPI builds.
type apiOptions struct {
	// store wraps the database before the server gets it (fault injection).
	store func(*db.DB) handlers.Store
	// noPriceBook leaves the database without a price book.
	noPriceBook bool
	// config changes the server's configuration.
	config func(*handlers.Config)
}

// mustOpenDB opens a real SQLite file under t.TempDir() (or, with
// TALLY_TEST_DB=postgres, a fresh PostgreSQL database) with a test clock.
func mustOpenDB(t *testing.T, clock *testClock) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), storetest.DSN(t),
		db.Options{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// newTestAPI opens a database in t.TempDir(), publishes the test price book,
// creates an admin, a metering, a portal and a read key and serves the API.
func newTestAPI(t *testing.T) *testAPI { return newTestAPIWith(t, apiOptions{}) }

func newTestAPIWith(t *testing.T, o apiOptions) *testAPI {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{now: testStart}
	d := mustOpenDB(t, clock)
	if !o.noPriceBook {
		if _, _, err := d.PublishPriceBook(ctx, testPriceBook()); err != nil {
			t.Fatalf("PublishPriceBook: %v", err)
		}
	}
	a := &testAPI{DB: d, Clock: clock, Log: &syncBuffer{}}
	var err error
	if a.AdminKey, a.Admin, err = d.CreateAPIKey(ctx, "test admin", billing.ScopeAdmin, billing.Limits{}, 0); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if a.MeterKey, a.Meter, err = d.CreateAPIKey(ctx, "test metering", billing.ScopeMetering, billing.Limits{}, 0); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if a.PortalKey, a.Portal, err = d.CreateAPIKey(ctx, "test portal", billing.ScopePortal, billing.Limits{}, 0); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if a.ReadKey, a.Read, err = d.CreateAPIKey(ctx, "test read", billing.ScopeRead, billing.Limits{}, 0); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	var store handlers.Store = d
	if o.store != nil {
		store = o.store(d)
	}
	cfg := handlers.Config{Logger: slog.New(slog.NewTextHandler(a.Log, nil)), Version: "test", Metrics: handlers.NewMetrics()}
	if o.config != nil {
		o.config(&cfg)
	}
	if cfg.Metrics != nil {
		d.SetBatchObserver(cfg.Metrics.ObserveBatch) // as tally serve wires it
	}
	a.Server = handlers.New(cfg, store)
	a.HTTP = httptest.NewServer(a.Server)
	t.Cleanup(a.HTTP.Close)
	return a
}

// response is one answer of the API.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any // the JSON object, numbers as json.Number; nil if the body is not one
}

// do sends a request. body is nil (none), a string or []byte (sent as is),
// an io.Reader (sent without a Content-Length), or any other value (sent as
// JSON). headers are name, value pairs. do never stops the test itself, so it
// is safe in subtests and goroutines: a request that could not be made comes
// back with status 0 and the error as its body, which want reports.
func (a *testAPI) do(method, path, key string, body any, headers ...string) response {
	fail := func(err error) response {
		return response{Status: 0, Header: http.Header{}, Raw: []byte(method + " " + path + ": " + err.Error())}
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return fail(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.HTTP.URL+path, rd)
	if err != nil {
		return fail(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(headers); i += 2 {
		if seen[headers[i]] { // a header given twice is sent twice
			req.Header.Add(headers[i], headers[i+1])
			continue
		}
		seen[headers[i]] = true
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := a.HTTP.Client().Do(req)
	if err != nil {
		return fail(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return fail(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Raw: raw, Body: decodeObject(raw)}
}

func decodeObject(raw []byte) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	return m
}

// want checks the status; on a mismatch it shows the body.
func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body: %s", r.Status, status, r.Raw)
	}
	return r
}

// wantError checks the status, the error type and that the body has exactly
// the shape {"error": {"type": string, "message": string, ...}}. It returns
// the error object.
func (r response) wantError(t *testing.T, status int, typ string) map[string]any {
	t.Helper()
	r.want(t, status)
	e := checkErrorShape(t, r.Raw)
	if e["type"] != typ {
		t.Fatalf("error type %v, want %s; body: %s", e["type"], typ, r.Raw)
	}
	return e
}

// checkErrorShape checks raw is {"error": {"type": "...", "message": "...", ...}}
// with nothing else at the top level, and returns the error object.
func checkErrorShape(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	m := decodeObject(raw)
	if m == nil {
		t.Fatalf("error body is not a JSON object: %q", raw)
	}
	if len(m) != 1 {
		t.Fatalf("error body has top-level keys other than \"error\": %s", raw)
	}
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("error body has no \"error\" object: %s", raw)
	}
	if s, ok := e["type"].(string); !ok || s == "" {
		t.Fatalf("error.type is not a non-empty string: %s", raw)
	}
	if s, ok := e["message"].(string); !ok || s == "" {
		t.Fatalf("error.message is not a non-empty string: %s", raw)
	}
	return e
}

// credits reads a JSON number of credits exactly (no float).
func credits(t *testing.T, v any) billing.Credits {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON number", v, v)
	}
	c, err := billing.ParseCredits(n.String())
	if err != nil {
		t.Fatalf("parse credits %q: %v", n, err)
	}
	return c
}

// num returns a JSON number as its literal text ("3.085").
func num(t *testing.T, v any) string {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON number", v, v)
	}
	return n.String()
}

func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON object", v, v)
	}
	return m
}

func arr(t *testing.T, v any) []any {
	t.Helper()
	s, ok := v.([]any)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON array", v, v)
	}
	return s
}

// keysOf returns the sorted keys of m as one string, for comparing shapes.
func keysOf(m map[string]any) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// customer creates a customer and returns its cus_ id.
func (a *testAPI) customer(t *testing.T, externalID string) string {
	t.Helper()
	r := a.do("POST", "/api/v1/customers", a.Meter, map[string]any{"external_id": externalID}).want(t, http.StatusCreated)
	return r.Body["id"].(string)
}

// grant adds credits (a decimal string) from source and returns the grant.
func (a *testAPI) grant(t *testing.T, customer, amount, source string) map[string]any {
	t.Helper()
	body := map[string]any{"customer": customer, "credits": json.Number(amount), "source": source}
	return a.do("POST", "/api/v1/grants", a.Admin, body).want(t, http.StatusCreated).Body
}

// usage meters an action and returns the response (any status).
func (a *testAPI) usage(customer, feature, quantity, key string) response {
	body := map[string]any{"customer": customer, "feature": feature, "quantity": json.Number(quantity)}
	if key != "" {
		body["idempotency_key"] = key
	}
	return a.do("POST", "/api/v1/usage", a.Meter, body)
}

// balance returns the customer's balance object.
func (a *testAPI) balance(t *testing.T, customer string) map[string]any {
	t.Helper()
	return a.do("GET", "/api/v1/customers/"+customer+"/balance", a.Read, nil).want(t, http.StatusOK).Body
}

// walk follows next_cursor from path (which has no cursor yet) and returns
// every item of every page.
func (a *testAPI) walk(t *testing.T, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	cursor := ""
	for page := 0; ; page++ {
		if page > 10_000 {
			t.Fatalf("pagination of %s does not end", path)
		}
		p := path
		if cursor != "" {
			p += sep + "cursor=" + cursor
		}
		r := a.do("GET", p, a.Read, nil).want(t, http.StatusOK)
		if r.Body["object"] != "list" {
			t.Fatalf("GET %s: object %v, want list", p, r.Body["object"])
		}
		for _, it := range arr(t, r.Body["data"]) {
			out = append(out, obj(t, it))
		}
		more, _ := r.Body["has_more"].(bool)
		next, _ := r.Body["next_cursor"].(string)
		if more != (next != "") {
			t.Fatalf("GET %s: has_more %v but next_cursor %q", p, more, next)
		}
		if !more {
			return out
		}
		cursor = next
	}
}

// ledgerSum walks the whole ledger and returns the entries and the sum of
// their amounts.
func (a *testAPI) ledgerSum(t *testing.T, customer string) ([]map[string]any, billing.Credits) {
	t.Helper()
	es := a.walk(t, "/api/v1/customers/"+customer+"/ledger?limit=100")
	var sum billing.Credits
	for _, e := range es {
		sum += credits(t, e["amount"])
	}
	return es, sum
}

// checkLedgerInvariant checks that the balance equals the sum of the ledger.
func (a *testAPI) checkLedgerInvariant(t *testing.T, customer string) {
	t.Helper()
	es, sum := a.ledgerSum(t, customer)
	if bal := credits(t, a.balance(t, customer)["balance"]); bal != sum {
		t.Fatalf("balance %s != sum of ledger entries %s", bal, sum)
	}
	// Oldest first, each entry's balance_after is the running sum.
	var running billing.Credits
	for i := len(es) - 1; i >= 0; i-- {
		running += credits(t, es[i]["amount"])
		if after := credits(t, es[i]["balance_after"]); after != running {
			t.Fatalf("entry %v: balance_after %s, running sum %s", es[i]["id"], after, running)
		}
	}
}
