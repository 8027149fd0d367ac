package notify_test

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/internal/smtptest"
	"github.com/tally-billing/tally/internal/storetest"
	"github.com/tally-billing/tally/notify"
)

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+/portal/session/([A-Za-z0-9_]+)`)

// notifyDB opens a database with a price book and customers whose
// low-balance line is 5 credits, each with 10 credits.
func notifyDB(t *testing.T) (*db.DB, map[string]string) {
	t.Helper()
	d := openDB(t)
	ctx := context.Background()
	if _, _, err := d.PublishPriceBook(ctx, billing.PriceBook{Currency: "usd", Features: []billing.Feature{
		{Key: "chat.request", Unit: "request", Credits: billing.CreditsOf(1)}}}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, c := range []struct{ ext, email, name string }{{"ada", "ada@example.com", "Ada"}, {"bob", "bob@example.com", ""}, {"cy", "", ""}} {
		cu, _, err := d.CreateCustomer(ctx, billing.CustomerInput{ExternalID: c.ext, Email: c.email, Name: c.name})
		if err != nil {
			t.Fatal(err)
		}
		ids[c.ext] = cu.ID
		// The line before the first grant: UpdateCustomerSettings does not
		// reach the writer's working copy of a wallet it already loaded.
		line := billing.CreditsOf(5)
		if err := d.UpdateCustomerSettings(ctx, cu.ID, billing.CustomerSettings{LowBalanceThreshold: &line}); err != nil {
			t.Fatal(err)
		}
		grant(t, d, cu.ID, 10)
	}
	return d, ids
}

func debit(t *testing.T, d *db.DB, customer string, n int64) {
	t.Helper()
	q := billing.QuantityOf(n)
	if _, err := d.Debit(context.Background(), billing.UsageRequest{Customer: customer, Feature: "chat.request", Quantity: &q}); err != nil {
		t.Fatal(err)
	}
}

func startMail(t *testing.T, d *db.DB, srv *smtptest.Server) func() {
	t.Helper()
	mailer, err := notify.NewSMTPMailer(notify.SMTPConfig{Host: "127.0.0.1", Port: srv.Port(),
		From: "Pixel AI <billing@pixel.example>", TLS: "none"})
	if err != nil {
		t.Fatal(err)
	}
	m := &notify.Mail{Store: d, Mailer: mailer, Log: slog.New(slog.DiscardHandler), BaseURL: "https://billing.pixel.example",
		ProductName: "Pixel AI", Poll: 10 * time.Millisecond, RetryAfter: 30 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestNotificationMail(t *testing.T) {
	d, ids := notifyDB(t)
	ctx := context.Background()
	srv := smtptest.Start(t)
	srv.Fail = func(n int) bool { return n == 1 } // the first try meets an SMTP error
	// bob turned low-balance e-mails off (depleted stays on).
	if err := d.SaveMailOptOuts(ctx, ids["bob"], map[string]bool{billing.NotifyDepleted: true, billing.NotifyReceipt: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveMailOptOuts(ctx, ids["bob"], map[string]bool{"nonsense": true}); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("an unknown kind: %v", err)
	}
	for _, c := range []string{"ada", "bob", "cy"} {
		debit(t, d, ids[c], 6) // 10 -> 4: balance.low
	}
	debit(t, d, ids["bob"], 4) // 4 -> 0: balance.depleted

	stop := startMail(t, d, srv)
	waitFor(t, "two e-mails", func() bool { return len(srv.Received()) >= 2 })
	time.Sleep(100 * time.Millisecond) // time for a wrong third
	got := srv.Received()
	if len(got) != 2 {
		t.Fatalf("%d e-mails, want 2 (ada's low balance, bob's depleted)", len(got))
	}
	byTo := map[string]smtptest.Mail{}
	for _, m := range got {
		if len(m.To) != 1 {
			t.Fatalf("recipients %v", m.To)
		}
		byTo[m.To[0]] = smtptest.Parse(t, m.Data)
	}
	ada, bob := byTo["ada@example.com"], byTo["bob@example.com"]
	if ada.Subject != "Pixel AI: Your balance is low" || !strings.Contains(ada.Text, "Hello Ada,") || !strings.Contains(ada.Text, "down to 4 credits") {
		t.Errorf("ada's e-mail: %q\n%s", ada.Subject, ada.Text)
	}
	if bob.Subject != "Pixel AI: You are out of credits" {
		t.Errorf("bob's e-mail: %q", bob.Subject)
	}
	if !strings.Contains(ada.HTML, "Your balance is low") || !strings.Contains(ada.HTML, "<a href=\"https://billing.pixel.example/portal/session/") {
		t.Errorf("ada's HTML:\n%s", ada.HTML)
	}
	// The link is a fresh, working sign-in link into the top-up.
	mt := linkRE.FindStringSubmatch(ada.Text)
	if mt == nil {
		t.Fatalf("no portal link in:\n%s", ada.Text)
	}
	in, err := d.UsePortalSession(ctx, mt[1])
	if err != nil || in.CustomerID != ids["ada"] || in.Flow != "top_up" {
		t.Fatalf("the e-mail's link: %+v, %v", in, err)
	}

	// A restart, even one that lost the cursor, mails nothing again.
	stop()
	raw := storetest.Raw(t, d.Path())
	if _, err := raw.Exec(`UPDATE event_cursors SET seq = 0 WHERE consumer = ?`, db.MailConsumer); err != nil {
		t.Fatal(err)
	}
	startMail(t, d, srv)
	waitFor(t, "the cursor to come back", func() bool {
		c, _ := d.EventCursor(ctx, db.MailConsumer)
		last, _ := d.LastEventSeq(ctx)
		return c == last
	})
	if n := len(srv.Received()); n != 2 {
		t.Fatalf("%d e-mails after the restart, want still 2", n)
	}
	// A new event after the restart is mailed.
	grant(t, d, ids["ada"], 10) // 4 -> 14: recovered (no mail)
	debit(t, d, ids["ada"], 10) // 14 -> 4: low again
	waitFor(t, "ada's second low-balance e-mail", func() bool { return len(srv.Received()) == 3 })
	if m := srv.Received()[2]; m.To[0] != "ada@example.com" {
		t.Errorf("third e-mail to %v", m.To)
	}
}

// A paid plan period is mailed as a receipt, under the plan kind: a
// customer who switched receipts of top-ups off still gets it, one who
// switched plan payments off does not.
func TestPlanReceiptMail(t *testing.T) {
	d, ids := notifyDB(t)
	ctx := context.Background()
	pb, err := d.CurrentPriceBook(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb.Plans = []billing.Plan{{Key: "starter", Name: "Starter", Price: billing.Money{Amount: 19_00}, Credits: billing.CreditsOf(2000)}}
	if _, _, err := d.PublishPriceBook(ctx, *pb); err != nil {
		t.Fatal(err)
	}
	// SaveMailOptOuts takes the kinds left on.
	allBut := func(off string) map[string]bool {
		on := map[string]bool{}
		for _, k := range billing.NotificationKinds {
			on[k] = k != off
		}
		return on
	}
	if err := d.SaveMailOptOuts(ctx, ids["ada"], allBut(billing.NotifyReceipt)); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveMailOptOuts(ctx, ids["bob"], allBut(billing.NotifyPlan)); err != nil {
		t.Fatal(err)
	}
	srv := smtptest.Start(t)
	startMail(t, d, srv)
	for _, c := range []string{"ada", "bob"} {
		if _, err := d.StartSubscription(ctx, db.SubscribeInput{Customer: ids[c], Plan: "starter"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ada's receipt", func() bool { return len(srv.Received()) >= 1 })
	time.Sleep(200 * time.Millisecond) // time for a wrong second
	got := srv.Received()
	if len(got) != 1 || got[0].To[0] != "ada@example.com" {
		t.Fatalf("%d e-mails (%v), want ada's receipt only", len(got), got)
	}
	m := smtptest.Parse(t, got[0].Data)
	if m.Subject != "Pixel AI: Receipt: Starter plan" || !strings.Contains(m.Text, "You paid $19.00 for the Starter plan: 2,000 credits for ") ||
		!strings.Contains(m.Text, "See your plan") {
		t.Errorf("receipt: %q\n%s", m.Subject, m.Text)
	}
}
