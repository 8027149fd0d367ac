package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/wneessen/go-mail"
)

// Message is one e-mail: plain text, and HTML when set.
type Message struct {
	To, Subject, Text, HTML string
}

// Mailer sends e-mail.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// SMTPConfig is how Tally reaches its mail server (TALLY_SMTP_*).
type SMTPConfig struct {
	Host     string // empty: no e-mail (notifications appear in the portal only)
	Port     int    // default 587 (465 for TLS "tls")
	Username string // with Password: SMTP AUTH (PLAIN, or LOGIN when the server offers only that)
	Password string
	From     string // the sender address, e.g. "Pixel AI billing <billing@example.com>"
	// TLS: "starttls" (the default: required), "opportunistic" (STARTTLS
	// when offered), "tls" (implicit TLS, port 465) or "none".
	TLS string
}

// SMTPMailer sends through an SMTP server with go-mail.
type SMTPMailer struct{ cfg SMTPConfig }

// NewSMTPMailer checks the configuration.
func NewSMTPMailer(cfg SMTPConfig) (*SMTPMailer, error) {
	if cfg.From == "" {
		return nil, fmt.Errorf("TALLY_SMTP_FROM is required when TALLY_SMTP_HOST is set")
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = "starttls"
	case "starttls", "opportunistic", "tls", "none":
	default:
		return nil, fmt.Errorf("--smtp-tls %q: use starttls, opportunistic, tls or none", cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = 587
		if cfg.TLS == "tls" {
			cfg.Port = 465
		}
	}
	if _, err := mail.NewClient(cfg.Host, mailOptions(cfg)...); err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	m := mail.NewMsg()
	if err := m.From(cfg.From); err != nil {
		return nil, fmt.Errorf("TALLY_SMTP_FROM %q: %w", cfg.From, err)
	}
	return &SMTPMailer{cfg: cfg}, nil
}

// Mode describes the configuration for the startup log (no secrets).
func (s *SMTPMailer) Mode() string {
	return fmt.Sprintf("smtp %s:%d (tls %s, from %s)", s.cfg.Host, s.cfg.Port, s.cfg.TLS, s.cfg.From)
}

func mailOptions(cfg SMTPConfig) []mail.Option {
	opts := []mail.Option{mail.WithPort(cfg.Port), mail.WithTimeout(20 * time.Second)}
	switch cfg.TLS {
	case "starttls":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case "opportunistic":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case "tls":
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	return opts
}

// Send delivers one message (one connection per message: notifications
// are few, and a fresh connection has no state to go stale).
func (s *SMTPMailer) Send(ctx context.Context, m Message) error {
	msg := mail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return err
	}
	if err := msg.To(m.To); err != nil {
		return err
	}
	msg.Subject(m.Subject)
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	c, err := mail.NewClient(s.cfg.Host, mailOptions(s.cfg)...)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, msg)
}
