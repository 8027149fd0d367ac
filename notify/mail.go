package notify

import (
	"bytes"
	"context"
	"embed"
	htmltemplate "html/template"
	"log/slog"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/views"
)

//go:embed templates
var templateFS embed.FS

var (
	textTmpl = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/notification.txt"))
	htmlTmpl = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/notification.html"))
)

// MailStore is what the e-mail consumer needs from storage (*db.DB).
type MailStore interface {
	EventCursor(ctx context.Context, consumer string) (int64, error)
	SaveEventCursor(ctx context.Context, consumer string, seq int64) error
	FindEvents(ctx context.Context, f db.EventFilter) ([]billing.Event, error)
	EventSignal() <-chan struct{}
	FindCustomer(ctx context.Context, ref string) (billing.Customer, error)
	MailOptOuts(ctx context.Context, customerID string) (map[string]bool, error)
	ClaimMail(ctx context.Context, customerID string, seq int64, kind string) (bool, error)
	ReleaseMail(ctx context.Context, customerID string, seq int64) error
	CreatePortalSession(ctx context.Context, ref, returnURL, flow string, ttl time.Duration) (string, time.Time, error)
}

// MailLinkTTL is how long the sign-in link of an e-mail works: longer than
// an API-minted link's five minutes, as mail is read later; still single-use.
const MailLinkTTL = 72 * time.Hour

// Mail e-mails customers their notifications (billing.NotificationKind):
// an outbox consumer with its own cursor (db.MailConsumer). Each e-mail is
// claimed in sent_mail before it is sent, so none goes twice, even across
// a restart; an SMTP error releases the claim and the consumer stops at
// that event and tries again after RetryAfter.
type Mail struct {
	Store       MailStore
	Mailer      Mailer
	Log         *slog.Logger
	BaseURL     string // the portal's public URL, for the sign-in links
	ProductName string
	Poll        time.Duration // default 1 s
	RetryAfter  time.Duration // after an SMTP error; default 30 s
	// MaxAge: older events are not mailed (default 24 h), so turning e-mail
	// on, or a long outage, does not send a pile of stale news.
	MaxAge time.Duration
	Now    func() time.Time

	after, savedAt int64 // handled up to after; the stored cursor is savedAt
	loaded         bool
	saved          time.Time
}

// Run sends notifications until ctx ends. Without a Mailer it still moves
// its cursor, so configuring SMTP later does not mail the past.
func (m *Mail) Run(ctx context.Context) {
	if m.Log == nil {
		m.Log = slog.Default()
	}
	if m.Poll <= 0 {
		m.Poll = time.Second
	}
	if m.RetryAfter <= 0 {
		m.RetryAfter = 30 * time.Second
	}
	if m.MaxAge <= 0 {
		m.MaxAge = 24 * time.Hour
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	tick := time.NewTicker(m.Poll)
	defer tick.Stop()
	for {
		wait := m.drain(ctx)
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			m.save(sctx, true)
			cancel()
			return
		case <-tick.C:
		case <-m.Store.EventSignal():
		}
	}
}

// drain handles every event after the cursor; it answers how long to wait
// before trying again after a failure (0: all done). The cursor is kept in
// memory and saved when an e-mail went out or 5 s have passed, so events
// that mail nobody cost no commit each (re-reading them after a restart is
// harmless: sent_mail keeps every e-mail to once).
func (m *Mail) drain(ctx context.Context) time.Duration {
	if !m.loaded {
		c, err := m.Store.EventCursor(ctx, db.MailConsumer)
		if err != nil {
			return m.fail(ctx, "mail cursor", err)
		}
		m.after, m.loaded = c, true
	}
	for {
		evs, err := m.Store.FindEvents(ctx, db.EventFilter{After: m.after, Limit: 200})
		if err != nil {
			return m.fail(ctx, "mail events", err)
		}
		if len(evs) == 0 {
			return m.save(ctx, false)
		}
		var failed error
		sent := false
		for _, ev := range evs {
			var ok bool
			if ok, failed = m.handle(ctx, ev); failed != nil {
				break
			}
			sent = sent || ok
			m.after = ev.Seq
		}
		if wait := m.save(ctx, sent); wait > 0 {
			return wait
		}
		if failed != nil {
			return m.fail(ctx, "notification e-mail not sent; will retry", failed)
		}
	}
}

// save writes the cursor when now is true or it is 5 s old.
func (m *Mail) save(ctx context.Context, now bool) time.Duration {
	if m.after == m.savedAt || (!now && time.Since(m.saved) < 5*time.Second) {
		return 0
	}
	if err := m.Store.SaveEventCursor(ctx, db.MailConsumer, m.after); err != nil {
		return m.fail(ctx, "mail cursor", err)
	}
	m.saved, m.savedAt = time.Now(), m.after
	return 0
}

func (m *Mail) fail(ctx context.Context, msg string, err error) time.Duration {
	if ctx.Err() != nil {
		return time.Millisecond
	}
	m.Log.Warn(msg, "err", err, "retry_in", m.RetryAfter)
	return m.RetryAfter
}

// handle e-mails one event to its customer when it is a notification they
// want and have an address for.
func (m *Mail) handle(ctx context.Context, ev billing.Event) (sent bool, err error) {
	kind := billing.NotificationKind(ev.Type, ev.Data)
	if kind == "" || ev.Customer == "" || m.Mailer == nil || m.Now().Sub(ev.CreatedAt) > m.MaxAge {
		return false, nil
	}
	cu, err := m.Store.FindCustomer(ctx, ev.Customer)
	if err != nil {
		if billing.ErrorCode(err) == billing.CodeCustomerNotFound {
			return false, nil
		}
		return false, err
	}
	if cu.Email == "" {
		return false, nil
	}
	off, err := m.Store.MailOptOuts(ctx, cu.ID)
	if err != nil {
		return false, err
	}
	if off[kind] {
		return false, nil
	}
	claimed, err := m.Store.ClaimMail(ctx, cu.ID, ev.Seq, kind)
	if err != nil || !claimed {
		return false, err
	}
	msg, err := m.message(ctx, cu, ev, kind)
	if err == nil {
		err = m.Mailer.Send(ctx, msg)
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := m.Store.ReleaseMail(rctx, cu.ID, ev.Seq); rerr != nil {
			m.Log.Error("mail claim not released: this e-mail will not be retried", "customer", cu.ID, "event", ev.ID, "err", rerr)
		}
		return false, err
	}
	m.Log.Info("notification e-mailed", "customer", cu.ID, "event", ev.ID, "kind", kind)
	return true, nil
}

// message renders the e-mail with a fresh single-use sign-in link.
func (m *Mail) message(ctx context.Context, cu billing.Customer, ev billing.Event, kind string) (Message, error) {
	flow := ""
	if kind == billing.NotifyLowBalance || kind == billing.NotifyDepleted {
		flow = "top_up"
	}
	token, _, err := m.Store.CreatePortalSession(ctx, cu.ID, "", flow, MailLinkTTL)
	if err != nil {
		return Message{}, err
	}
	n := billing.Notice{ID: ev.Seq, Customer: cu.ID, Type: ev.Type, Data: ev.Data, CreatedAt: ev.CreatedAt}
	f := views.NewFmt("", "")
	product := m.ProductName
	if product == "" {
		product = "Your"
	}
	greeting := "Hello,"
	if cu.Name != "" {
		greeting = "Hello " + cu.Name + ","
	}
	data := map[string]string{
		"Product": product, "Title": views.NotificationTitle(f, n), "Text": views.NotificationText(f, n),
		"Action": views.NotificationAction(n), "Link": strings.TrimRight(m.BaseURL, "/") + "/portal/session/" + token,
		"Greeting": greeting, "LinkValid": "3 days",
	}
	var text, html bytes.Buffer
	if err := textTmpl.Execute(&text, data); err != nil {
		return Message{}, err
	}
	if err := htmlTmpl.Execute(&html, data); err != nil {
		return Message{}, err
	}
	subject := data["Title"]
	if m.ProductName != "" {
		subject = m.ProductName + ": " + subject
	}
	return Message{To: cu.Email, Subject: subject, Text: text.String(), HTML: html.String()}, nil
}
