package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
	"github.com/tally-billing/tally/notify"
)

// notifyConfig configures the outbox's outward consumers: webhooks and e-mail.
type notifyConfig struct {
	WebhookAllowPrivate bool
	WebhookConcurrency  int
	OwnerEmail          string
	SMTP                notify.SMTPConfig
}

func notifyFlags(fs *flag.FlagSet, getenv env, cfg *notifyConfig) {
	fs.BoolVar(&cfg.WebhookAllowPrivate, "webhook-allow-private", envBool(getenv, "TALLY_WEBHOOK_ALLOW_PRIVATE", false), "let webhook endpoints be on loopback or private addresses; off, Tally refuses them when created and when dialled, so an admin key cannot reach the services beside it (env TALLY_WEBHOOK_ALLOW_PRIVATE)")
	fs.IntVar(&cfg.WebhookConcurrency, "webhook-concurrency", envInt(getenv, "TALLY_WEBHOOK_CONCURRENCY", 8), "most webhook deliveries in flight at once (env TALLY_WEBHOOK_CONCURRENCY)")
	fs.StringVar(&cfg.OwnerEmail, "owner-email", envOr(getenv, "TALLY_OWNER_EMAIL", ""), "the operator's address: told when a webhook endpoint is disabled (env TALLY_OWNER_EMAIL)")
	fs.StringVar(&cfg.SMTP.Host, "smtp-host", envOr(getenv, "TALLY_SMTP_HOST", ""), "SMTP server for e-mail; empty: notifications appear in the portal only (env TALLY_SMTP_HOST)")
	fs.IntVar(&cfg.SMTP.Port, "smtp-port", envInt(getenv, "TALLY_SMTP_PORT", 0), "SMTP port; default 587, or 465 with --smtp-tls tls (env TALLY_SMTP_PORT)")
	fs.StringVar(&cfg.SMTP.Username, "smtp-username", envOr(getenv, "TALLY_SMTP_USERNAME", ""), "SMTP user name (env TALLY_SMTP_USERNAME); the password only from TALLY_SMTP_PASSWORD")
	cfg.SMTP.Password = getenv("TALLY_SMTP_PASSWORD")
	fs.StringVar(&cfg.SMTP.From, "smtp-from", envOr(getenv, "TALLY_SMTP_FROM", ""), "sender of e-mails, e.g. 'Pixel AI <billing@example.com>' (env TALLY_SMTP_FROM)")
	fs.StringVar(&cfg.SMTP.TLS, "smtp-tls", envOr(getenv, "TALLY_SMTP_TLS", "starttls"), "starttls (required), opportunistic, tls (implicit, port 465) or none (env TALLY_SMTP_TLS)")
}

// newMailer is the SMTP mailer, or nil with the mode to log when SMTP is
// not configured.
func newMailer(cfg notifyConfig) (notify.Mailer, string, error) {
	if cfg.SMTP.Host == "" {
		return nil, "off (TALLY_SMTP_HOST not set): notifications appear in the portal only", nil
	}
	m, err := notify.NewSMTPMailer(cfg.SMTP)
	if err != nil {
		return nil, "", err
	}
	return m, m.Mode(), nil
}

// startWebhooks starts the webhook worker; the returned channel closes when
// it has stopped.
func startWebhooks(ctx context.Context, d *db.DB, cfg notifyConfig, mailer notify.Mailer, log *slog.Logger) (*notify.Webhooks, <-chan struct{}) {
	w := &notify.Webhooks{Store: d, Client: notify.NewWebhookClient(cfg.WebhookAllowPrivate), Log: log,
		Concurrency: cfg.WebhookConcurrency, Owner: cfg.OwnerEmail, Mailer: mailer}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	return w, done
}

// startMail starts the e-mail consumer (it runs without SMTP too, moving
// its cursor, so configuring SMTP later does not mail the past).
func startMail(ctx context.Context, d *db.DB, mailer notify.Mailer, baseURL, product string, log *slog.Logger) <-chan struct{} {
	m := &notify.Mail{Store: d, Mailer: mailer, Log: log, BaseURL: baseURL, ProductName: product}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	return done
}

func webhooksConfig(d *db.DB, cfg notifyConfig, w *notify.Webhooks) handlers.WebhooksConfig {
	return handlers.WebhooksConfig{Store: d, AllowPrivate: cfg.WebhookAllowPrivate, Wake: w.Wake}
}

func validNotify(cfg notifyConfig) error {
	if cfg.WebhookConcurrency < 1 {
		return usageError{fmt.Sprintf("--webhook-concurrency must be at least 1, got %d", cfg.WebhookConcurrency)}
	}
	return nil
}
