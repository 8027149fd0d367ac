package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/tally-billing/tally/handlers"
)

// newPortalAPI is newTestAPI with the portal configured by pc.
func newPortalAPI(t *testing.T, pc func(*handlers.PortalConfig)) *testAPI {
	t.Helper()
	return newTestAPIWith(t, apiOptions{config: func(c *handlers.Config) {
		if pc != nil {
			pc(&c.Portal)
		}
	}})
}

// portalVisitor is one browser: its own cookie jar, and redirects are not
// followed, so each answer can be checked as it is.
type portalVisitor struct {
	t    *testing.T
	a    *testAPI
	http *http.Client
	lang string // Accept-Language, "" for none
}

func newPortalVisitor(t *testing.T, a *testAPI) *portalVisitor {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &portalVisitor{t: t, a: a, http: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// link asks the API for a sign-in link for customer and returns its URL.
func (a *testAPI) link(t *testing.T, customer string) string {
	t.Helper()
	r := a.do("POST", "/api/v1/portal-sessions", a.Portal, map[string]any{"customer": customer, "return_url": "https://app.example/home"}).
		want(t, http.StatusCreated)
	u, _ := r.Body["url"].(string)
	if !strings.Contains(u, "/portal/session/") {
		t.Fatalf("portal session url %q", u)
	}
	return u
}

// signIn opens a fresh sign-in link for customer and checks it lands on /portal.
func (v *portalVisitor) signIn(customer string) {
	v.t.Helper()
	r := v.open(v.a.link(v.t, customer))
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal" {
		v.t.Fatalf("sign-in link: %d to %q, want 303 to /portal; body %.300s", r.Status, r.Header.Get("Location"), r.Raw)
	}
}

// open GETs an absolute URL.
func (v *portalVisitor) open(u string) response { return v.send("GET", u, nil) }

// get GETs a path of the server. headers are name, value pairs.
func (v *portalVisitor) get(path string, headers ...string) response {
	return v.send("GET", v.a.HTTP.URL+path, nil, headers...)
}

// post sends a form to a path.
func (v *portalVisitor) post(path string, form url.Values, headers ...string) response {
	return v.send("POST", v.a.HTTP.URL+path, form, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, headers...)...)
}

func (v *portalVisitor) send(method, u string, form url.Values, headers ...string) response {
	v.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		v.t.Fatal(err)
	}
	if v.lang != "" {
		req.Header.Set("Accept-Language", v.lang)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := v.http.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, u, err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Raw: raw}
}

// csrf is the token a page hands its forms (<meta name="csrf-token">).
func (v *portalVisitor) csrf(path string) string {
	v.t.Helper()
	r := v.get(path).want(v.t, http.StatusOK)
	tok, _ := doc(v.t, r).Find(`meta[name="csrf-token"]`).Attr("content")
	if tok == "" {
		v.t.Fatalf("GET %s: no csrf-token meta", path)
	}
	return tok
}

// cookie is the visitor's cookie of that name for the server ("" if none).
func (v *portalVisitor) cookie(name string) string {
	u, _ := url.Parse(v.a.HTTP.URL)
	for _, c := range v.http.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// signedInAs is the customer name the portal header shows, "" when the
// visitor is sent to the start page instead.
func (v *portalVisitor) signedInAs() string {
	v.t.Helper()
	r := v.get("/portal")
	if r.Status == http.StatusSeeOther {
		return ""
	}
	r.want(v.t, http.StatusOK)
	return strings.TrimSpace(doc(v.t, r).Find("header span.font-semibold").First().Text())
}

// stream opens the balance event stream; cancel ends it.
func (v *portalVisitor) stream(path string) (*http.Response, context.CancelFunc) {
	v.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", v.a.HTTP.URL+path, nil)
	c := *v.http
	c.Timeout = 0 // the stream is ended by cancel
	res, err := c.Do(req)
	if err != nil {
		cancel()
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { cancel(); res.Body.Close() })
	return res, cancel
}

// doc parses an HTML answer.
func doc(t *testing.T, r response) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(string(r.Raw)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testID is the trimmed text of the first element with that data-testid.
func testID(t *testing.T, r response, id string) string {
	t.Helper()
	return strings.Join(strings.Fields(doc(t, r).Find(`[data-testid="`+id+`"]`).First().Text()), " ")
}

// namedCustomer creates a customer with a name and an email.
func (a *testAPI) namedCustomer(t *testing.T, externalID, name string) string {
	t.Helper()
	r := a.do("POST", "/api/v1/customers", a.Meter, map[string]any{"external_id": externalID, "name": name,
		"email": externalID + "@example.test"}).want(t, http.StatusCreated)
	return r.Body["id"].(string)
}
