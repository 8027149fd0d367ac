package main

import (
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/internal/smtptest"
	"github.com/tally-billing/tally/internal/testserver"
)

// TestServeMailsLowBalance runs the real binary, `tally serve`, with
// TALLY_SMTP_* pointing at an SMTP server this test starts, and takes a
// customer's balance under its low-balance line through the API: the
// e-mail arrives with the right envelope and headers, a plain-text and an
// HTML part, and a sign-in link (the same in both) that signs the customer
// in to the portal's top-up once.
func TestServeMailsLowBalance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	smtp := smtptest.Start(t)
	s := testserver.Start(t, "--smtp-host", "127.0.0.1", "--smtp-port", strconv.Itoa(smtp.Port()), "--smtp-tls", "none",
		"--smtp-from", "Pixel AI Billing <billing@pixel.example>", "--product-name", "Pixel AI")
	st, cu := api(t, s.URL, s.Key, "POST", "/api/v1/customers", map[string]any{"external_id": "mail-ada", "name": "Ada Lovelace", "email": "ada@example.com"})
	if st != http.StatusCreated {
		t.Fatalf("customer: %d %v", st, cu)
	}
	if st, b := api(t, s.URL, s.Key, "POST", "/api/v1/grants", map[string]any{"customer": "mail-ada", "credits": 100, "source": "purchase"}); st != http.StatusCreated {
		t.Fatalf("grant: %d %v", st, b)
	}
	// 100 -> 4 credits: under the default line (10% of the last top-up).
	if st, b := api(t, s.URL, s.Key, "POST", "/api/v1/usage", map[string]any{"customer": "mail-ada", "feature": "chat.request", "quantity": 96}); st != http.StatusCreated {
		t.Fatalf("usage: %d %v", st, b)
	}
	var got *smtptest.Msg
	for deadline := time.Now().Add(20 * time.Second); got == nil; time.Sleep(50 * time.Millisecond) {
		for _, m := range smtp.Received() {
			if len(m.To) == 1 && m.To[0] == "ada@example.com" {
				got = &m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no e-mail to ada@example.com; received %d", len(smtp.Received()))
		}
	}
	if got.From != "billing@pixel.example" {
		t.Errorf("envelope sender %q", got.From)
	}
	m := smtptest.Parse(t, got.Data)
	from, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil || from.Address != "billing@pixel.example" || from.Name != "Pixel AI Billing" {
		t.Errorf("From %q (%v)", m.Header.Get("From"), err)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil || to.Address != "ada@example.com" {
		t.Errorf("To %q (%v)", m.To, err)
	}
	if m.Subject != "Pixel AI: Your balance is low" {
		t.Errorf("Subject %q", m.Subject)
	}
	if d, err := m.Header.Date(); err != nil || time.Since(d) > time.Minute || time.Until(d) > time.Minute {
		t.Errorf("Date %q (%v)", m.Header.Get("Date"), err)
	}
	if id := m.Header.Get("Message-Id"); !regexp.MustCompile(`^<[^<>@\s]+@[^<>@\s]+>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	if m.Header.Get("Mime-Version") != "1.0" || !strings.HasPrefix(m.Header.Get("Content-Type"), "multipart/alternative;") {
		t.Errorf("MIME-Version %q, Content-Type %q", m.Header.Get("Mime-Version"), m.Header.Get("Content-Type"))
	}
	// Plain text first, HTML last (the part a reader prefers, RFC 2046).
	if len(m.PartTypes) != 2 || !strings.HasPrefix(m.PartTypes[0], "text/plain") || !strings.HasPrefix(m.PartTypes[1], "text/html") {
		t.Errorf("parts %v", m.PartTypes)
	}
	if !strings.Contains(m.Text, "Hello Ada") || !strings.Contains(m.Text, "4 credits") || strings.Contains(m.Text, "<") {
		t.Errorf("text part:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, "<h1") || !strings.Contains(m.HTML, "Your balance is low") || !strings.Contains(m.HTML, "Hello Ada") {
		t.Errorf("HTML part:\n%s", m.HTML)
	}
	linkRE := regexp.MustCompile(regexp.QuoteMeta(s.URL) + `/portal/session/[A-Za-z0-9_]+`)
	link := linkRE.FindString(m.Text)
	hrefs := regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(m.HTML, -1)
	if link == "" || len(hrefs) != 1 || html.UnescapeString(hrefs[0][1]) != link {
		t.Fatalf("the sign-in link: text %q, HTML %v", link, hrefs)
	}
	// The link signs Ada in, into the top-up; it works once.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	res, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Request.URL.Path, "/portal") || !strings.Contains(res.Request.URL.String(), "top") {
		t.Fatalf("following the link: %d at %s", res.StatusCode, res.Request.URL)
	}
	res, err = (&http.Client{Timeout: 10 * time.Second}).Get(link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusGone {
		t.Fatalf("the link a second time: %d at %s, want 410", res.StatusCode, res.Request.URL)
	}
}
