package views

import "github.com/tally-billing/tally/billing"

// Shell is what every page's frame needs.
type Shell struct {
	Title       string
	Assets      AssetURLs
	CSRF        string // token for forms (_csrf) and htmx (X-CSRF-Token)
	Fmt         Fmt
	ProductName string // "Back to <ProductName>"
	ReturnURL   string // where "Back to" goes; empty hides it
	Nav         string // active tab: overview, usage, ledger, settings
	Flash       *Flash
	Demo        bool
	Customer    *CustomerHeader // nil on public pages
	Payments    bool            // payments are set up: show the Billing tab and top-ups
	Plans       bool            // the price book offers subscription plans: show the Plan tab
	Notices     []Notice        // billing notices not yet dealt with, under the header of every page
	SignedIn    bool            // a public page seen by a signed-in customer (offer their billing)
	Frozen      bool            // an admin froze the customer's account (a banner says why usage stops)
	ReadOnly    bool            // an admin's read-only view of the customer's portal
}

// Notice is a billing event the customer should act on (a declined or
// paused auto-refill...), with where to act on it.
type Notice struct {
	Event    billing.Notice
	Link     string // "" for none
	LinkText string
}

// AssetURLs are the fingerprinted URLs of the embedded assets.
type AssetURLs struct {
	CSS, JS, HTMX string
	Icon          string // the favicon (SVG)
}

// Flash is a one-time message after an action ("Spend limits saved.").
type Flash struct {
	Kind    string // success, error, info
	Message string
}

// CustomerHeader is the signed-in customer and their live balance.
type CustomerHeader struct {
	ID      string
	Name    string
	Email   string
	Balance BalanceView
	Unread  int // notifications not yet seen (counted up to UnreadMax); -1: no notifications list
}

// BalanceView is the header balance: what a customer checks first.
type BalanceView struct {
	Balance   billing.Credits
	Available billing.Credits
	Held      billing.Credits
	Low       bool // under the customer's low-balance threshold
	Depleted  bool // nothing available
}
