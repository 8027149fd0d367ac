package main

import (
	"strings"
	"testing"

	"github.com/tally-billing/tally/notify"
)

// The startup log's mail mode: off says where notifications go instead;
// a host without a sender, or an unknown TLS mode, refuses to start.
func TestMailMode(t *testing.T) {
	m, mode, err := newMailer(notifyConfig{})
	if err != nil || m != nil || !strings.Contains(mode, "notifications appear in the portal only") {
		t.Errorf("no SMTP: %v %q %v", m, mode, err)
	}
	if _, _, err := newMailer(notifyConfig{SMTP: notify.SMTPConfig{Host: "smtp.example.com"}}); err == nil || !strings.Contains(err.Error(), "TALLY_SMTP_FROM") {
		t.Errorf("no sender: %v", err)
	}
	if _, _, err := newMailer(notifyConfig{SMTP: notify.SMTPConfig{Host: "smtp.example.com", From: "b@example.com", TLS: "maybe"}}); err == nil {
		t.Error("an unknown TLS mode was accepted")
	}
	m, mode, err = newMailer(notifyConfig{SMTP: notify.SMTPConfig{Host: "smtp.example.com", From: "Pixel <b@example.com>", Password: "s3cret"}})
	if err != nil || m == nil || mode != "smtp smtp.example.com:587 (tls starttls, from Pixel <b@example.com>)" || strings.Contains(mode, "s3cret") {
		t.Errorf("SMTP: %q %v", mode, err)
	}
}
