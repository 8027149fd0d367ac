package views

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// The portal's notices are outbox events (billing.Notice): their wording
// lives here, rendered from the event's type and structured data, never
// stored.

// NoticeTitle is a notice's heading.
func NoticeTitle(n billing.Notice) string {
	switch n.Type {
	case billing.EventAutoRefillFailed:
		switch noticeStr(n, "reason") {
		case billing.RefillSkipMonthlyCount, billing.RefillSkipMonthlyAmount:
			return "Auto-refill limit reached"
		case "":
			return "Auto-refill payment declined"
		}
		return "Auto-refill could not run"
	case billing.EventAutoRefillPaused:
		return "Auto-refill is paused"
	case billing.EventAutoRefillActionRequired:
		return "Confirm your auto-refill"
	case billing.EventDisputeOpened:
		return "A payment is disputed"
	case billing.EventInvoicePaymentFailed:
		if noticeStr(n, "final") == "true" {
			return "Your plan has ended"
		}
		return "Your plan's payment failed"
	}
	return "Billing notice"
}

// NoticeText is a notice's sentence: what happened and what to do.
func NoticeText(f Fmt, n billing.Notice) string {
	what := strings.TrimPrefix(noticeStr(n, "description"), "Auto-refill: ")
	switch n.Type {
	case billing.EventAutoRefillFailed:
		switch noticeStr(n, "reason") {
		case "":
			text := "Auto-refill could not charge your card: " + noticeStr(n, "failure_reason")
			if next, err := time.Parse(time.RFC3339Nano, noticeStr(n, "next_attempt_at")); err == nil {
				text += " We will try again in " + humanDuration(next.Sub(n.CreatedAt)) + "."
			}
			return text
		case billing.RefillSkipNoCard:
			return "Auto-refill could not run: there is no saved card. Add a card to keep your credits topped up."
		case billing.RefillSkipMonthlyCount:
			return "Auto-refill did not run: you allowed at most " + noticeStr(n, "limit") +
				" refills a month, and this month's are used. Top up by hand, or raise the limit."
		case billing.RefillSkipMonthlyAmount:
			limit := ""
			if v, err := strconv.ParseInt(noticeStr(n, "limit"), 10, 64); err == nil {
				limit = " of " + f.Money(billing.Money{Amount: v, Currency: noticeStr(n, "currency")})
			}
			return "Auto-refill did not run: it would pass the monthly amount" + limit + " you allowed. Top up by hand, or raise the limit."
		case billing.RefillSkipNoPrice:
			return "Auto-refill could not run: " + noticeStr(n, "detail")
		}
	case billing.EventAutoRefillPaused:
		return fmt.Sprintf("Auto-refill is paused: your card was declined %s times (%s). Update your card, then turn auto-refill back on.",
			noticeStr(n, "failures"), noticeStr(n, "failure_reason"))
	case billing.EventAutoRefillActionRequired:
		return "Your bank asks you to confirm the auto-refill of " + what + ". Confirm it to add the credits."
	case billing.EventDisputeOpened:
		return "A payment for " + what + " is disputed; its remaining credits are on hold until the dispute is resolved."
	case billing.EventInvoicePaymentFailed:
		amount := ""
		if v, err := strconv.ParseInt(noticeStr(n, "amount"), 10, 64); err == nil && v > 0 {
			amount = " of " + f.Money(billing.Money{Amount: v, Currency: noticeStr(n, "currency")})
		}
		if noticeStr(n, "final") == "true" {
			return "We could not collect your plan's payment" + amount + " after several tries, so your plan has ended and its credits no longer renew. Credits you have stay until they expire."
		}
		return "We could not collect your plan's payment" + amount + ", so its credits will not renew until it is paid. Update your card; we will try again."
	}
	return ""
}

// noticeStr is a data field as text ("" when absent).
func noticeStr(n billing.Notice, key string) string {
	v, ok := n.Data[key]
	if !ok || v == nil {
		return ""
	}
	if f, ok := v.(float64); ok { // JSON numbers
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// humanDuration says how long, roughly: "an hour", "6 hours", "a day".
func humanDuration(d time.Duration) string {
	switch h := int(d.Round(time.Hour).Hours()); {
	case d < 90*time.Minute:
		return "an hour"
	case h < 24:
		return strconv.Itoa(h) + " hours"
	case h < 48:
		return "a day"
	default:
		return strconv.Itoa(h/24) + " days"
	}
}
