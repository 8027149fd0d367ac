package notify_test

import (
	"bufio"
	"context"
	"github.com/tally-billing/tally/internal/storetest"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/notify"
)

// smtpServer is a small SMTP server for tests (RFC 5321's commands that a
// client sending one message uses), keeping what it receives. fail makes
// it refuse the n-th message (from 1) with a temporary error.
type smtpServer struct {
	ln    net.Listener
	mu    sync.Mutex
	msgs  []smtpMsg
	tries int
	fail  func(n int) bool
}

type smtpMsg struct {
	from string
	to   []string
	data string
}

func newSMTPServer(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, fail: func(int) bool { return false }}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(line string) { w.WriteString(line + "\r\n"); w.Flush() }
	say("220 test ESMTP")
	var m smtpMsg
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-test")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "HELO"):
			say("250 test")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m = smtpMsg{from: strings.TrimSpace(line[len("MAIL FROM:"):])}
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.to = append(m.to, strings.Trim(strings.TrimSpace(line[len("RCPT TO:"):]), "<>"))
			say("250 ok")
		case cmd == "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.data = b.String()
			s.mu.Lock()
			s.tries++
			refuse := s.fail(s.tries)
			if !refuse {
				s.msgs = append(s.msgs, m)
			}
			s.mu.Unlock()
			if refuse {
				say("451 try again later")
			} else {
				say("250 queued")
			}
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

func (s *smtpServer) received() []smtpMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMsg(nil), s.msgs...)
}

// parsed is a received e-mail: its headers, plain text and HTML, decoded.
type parsed struct {
	subject, to, text, html string
}

func parseMail(t *testing.T, data string) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	p := parsed{subject: subject, to: msg.Header.Get("To")}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = part
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(part) // multipart already decodes it when the header is set; harmless otherwise
		}
		b, _ := io.ReadAll(body)
		ct := part.Header.Get("Content-Type")
		switch {
		case strings.HasPrefix(ct, "text/plain"):
			p.text = string(b)
		case strings.HasPrefix(ct, "text/html"):
			p.html = string(b)
		}
	}
	return p
}

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

func startMail(t *testing.T, d *db.DB, srv *smtpServer) func() {
	t.Helper()
	mailer, err := notify.NewSMTPMailer(notify.SMTPConfig{Host: "127.0.0.1", Port: srv.ln.Addr().(*net.TCPAddr).Port,
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
	srv := newSMTPServer(t)
	srv.fail = func(n int) bool { return n == 1 } // the first try meets an SMTP error
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
	waitFor(t, "two e-mails", func() bool { return len(srv.received()) >= 2 })
	time.Sleep(100 * time.Millisecond) // time for a wrong third
	got := srv.received()
	if len(got) != 2 {
		t.Fatalf("%d e-mails, want 2 (ada's low balance, bob's depleted)", len(got))
	}
	byTo := map[string]parsed{}
	for _, m := range got {
		if len(m.to) != 1 {
			t.Fatalf("recipients %v", m.to)
		}
		byTo[m.to[0]] = parseMail(t, m.data)
	}
	ada, bob := byTo["ada@example.com"], byTo["bob@example.com"]
	if ada.subject != "Pixel AI: Your balance is low" || !strings.Contains(ada.text, "Hello Ada,") || !strings.Contains(ada.text, "down to 4 credits") {
		t.Errorf("ada's e-mail: %q\n%s", ada.subject, ada.text)
	}
	if bob.subject != "Pixel AI: You are out of credits" {
		t.Errorf("bob's e-mail: %q", bob.subject)
	}
	if !strings.Contains(ada.html, "Your balance is low") || !strings.Contains(ada.html, "<a href=\"https://billing.pixel.example/portal/session/") {
		t.Errorf("ada's HTML:\n%s", ada.html)
	}
	// The link is a fresh, working sign-in link into the top-up.
	mt := linkRE.FindStringSubmatch(ada.text)
	if mt == nil {
		t.Fatalf("no portal link in:\n%s", ada.text)
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
	if n := len(srv.received()); n != 2 {
		t.Fatalf("%d e-mails after the restart, want still 2", n)
	}
	// A new event after the restart is mailed.
	grant(t, d, ids["ada"], 10) // 4 -> 14: recovered (no mail)
	debit(t, d, ids["ada"], 10) // 14 -> 4: low again
	waitFor(t, "ada's second low-balance e-mail", func() bool { return len(srv.received()) == 3 })
	if m := srv.received()[2]; m.to[0] != "ada@example.com" {
		t.Errorf("third e-mail to %v", m.to)
	}
}
