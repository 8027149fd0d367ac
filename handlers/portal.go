package handlers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/static"
	"github.com/tally-billing/tally/views"
)

// PortalConfig configures the customer portal.
type PortalConfig struct {
	Assets      *static.Assets
	ProductName string // shown as "Back to <ProductName>"
	BaseURL     string // public URL of Tally, for sign-in links
	Demo        bool   // the start page lists customers to sign in as
	// DemoCustomers are the external ids of the demo's own customers: in
	// demo mode the start page lists (and signs in as) these only, not the
	// customers an API client created meanwhile. Empty: every customer.
	DemoCustomers []string
	// SessionKeys sign and encrypt the session cookie (32-byte hash key,
	// 32-byte block key). Empty: keys generated once and kept in the database.
	SessionKeys [][]byte
	// SecureCookies marks cookies Secure (set it when Tally is behind TLS).
	SecureCookies bool
	IdleTimeout   time.Duration // sign out after this long without a request (default 30 min)
	MaxAge        time.Duration // sign out after this long in any case (default 12 h)
	// Live balance streams (GET /portal/events): at most MaxStreamsPerSession
	// per signed-in session (default 4) and MaxStreams in all (default 1000);
	// the excess is answered 429 too_many_streams. Each stream re-checks its
	// session every StreamKeepAlive (default 15 s), when it also sends a
	// keepalive, so a session ended elsewhere ends its streams by then.
	MaxStreams           int
	MaxStreamsPerSession int
	StreamKeepAlive      time.Duration
}

const (
	sessionName = "tally_portal"
	ctxCustomer = "tally.customer"
	ctxSession  = "tally.session"
)

// portalSession is the signed-in customer: the session id the cookie
// carries and what the session's row says.
type portalSession struct {
	ID         string // binds the CSRF token and the event streams to the session
	CustomerID string
	ReturnURL  string
	Flow       string // the flow the sign-in link opened
	SignedIn   time.Time
	LastSeen   time.Time
	ReadOnlyBy string // an admin's read-only view of the portal (every write refused)
}

func (s *Server) setupPortal(ctx context.Context) error {
	pc := &s.cfg.Portal
	if pc.Assets == nil {
		pc.Assets = static.New()
	}
	if pc.ProductName == "" {
		pc.ProductName = "Your app"
	}
	if pc.IdleTimeout <= 0 {
		pc.IdleTimeout = 30 * time.Minute
	}
	if pc.MaxAge <= 0 {
		pc.MaxAge = 12 * time.Hour
	}
	if pc.MaxStreams <= 0 {
		pc.MaxStreams = 1000
	}
	if pc.MaxStreamsPerSession <= 0 {
		pc.MaxStreamsPerSession = 4
	}
	if pc.StreamKeepAlive <= 0 {
		pc.StreamKeepAlive = 15 * time.Second
	}
	keys := pc.SessionKeys
	if len(keys) == 0 {
		k, err := s.portal.Secret(ctx, "session_keys", 64)
		if err != nil {
			return fmt.Errorf("portal: session keys: %w", err)
		}
		keys = [][]byte{k[:32], k[32:]}
	}
	store := sessions.NewCookieStore(keys...)
	store.Options = &sessions.Options{Path: "/", MaxAge: int(pc.MaxAge.Seconds()), HttpOnly: true,
		Secure: pc.SecureCookies, SameSite: http.SameSiteLaxMode}
	store.MaxAge(int(pc.MaxAge.Seconds()))
	s.sessions = store
	// The CSRF key comes from the cookie keys, so every process serving the
	// same database (or the same --session-key) agrees on the tokens.
	mac := hmac.New(sha256.New, keys[0])
	mac.Write([]byte("tally portal CSRF tokens"))
	s.csrfKey = mac.Sum(nil)
	return nil
}

// csrf protects every state-changing portal request. A signed-in
// browser's token is bound to its session: an HMAC of the session id (which
// only the encrypted session cookie holds) under a server key, so only the
// session's own pages know it and a token planted in a cookie proves
// nothing. A visitor who is not signed in (the start page, the demo
// sign-in, a sign-in link) gets Echo's double-submit cookie token. Forms
// send the token as _csrf, htmx as X-CSRF-Token. Browsers that send
// Sec-Fetch-Site are judged on it first, as Echo does: cross-site requests
// are refused, same-origin ones need no token.
func (s *Server) csrf() echo.MiddlewareFunc { return s.csrfFor(s.cookieSessionID) }

// csrfFor is csrf for the sessions whose id sessionID reads from a request
// (the portal's, or the admin console's).
func (s *Server) csrfFor(sessionID func(echo.Context) string) echo.MiddlewareFunc {
	anonymous := middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "header:X-CSRF-Token,form:_csrf",
		CookieName:     "tally_csrf",
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   s.cfg.Portal.SecureCookies,
		CookieSameSite: http.SameSiteLaxMode,
		ContextKey:     "csrf",
		// A cross-site request is refused before this, as an echo 403 that
		// the error handler words (asDomainError).
		ErrorHandler: func(error, echo.Context) error { return errCSRFToken },
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		anon := anonymous(next)
		return func(c echo.Context) error {
			id := sessionID(c)
			if id == "" {
				return anon(c)
			}
			token := s.csrfToken(id)
			c.Set("csrf", token)
			switch c.Request().Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
				return next(c)
			}
			switch c.Request().Header.Get(echo.HeaderSecFetchSite) {
			case "same-origin", "none":
				return next(c)
			case "", "same-site": // no Fetch Metadata, or a sibling site: the token decides
			default:
				return errCrossSite
			}
			for _, got := range []string{c.Request().Header.Get("X-CSRF-Token"), c.FormValue("_csrf")} {
				if got != "" && hmac.Equal([]byte(got), []byte(token)) {
					return next(c)
				}
			}
			return errCSRFToken
		}
	}
}

var (
	errCSRFToken = billing.Errorf(billing.CodeForbidden, "Your session's security token is missing or has expired. Reload the page and try again.")
	errCrossSite = billing.Errorf(billing.CodeForbidden, "This request came from another site and was refused. Reload the page and try again.")
)

// csrfToken is the CSRF token of a session.
func (s *Server) csrfToken(sessionID string) string {
	mac := hmac.New(sha256.New, s.csrfKey)
	mac.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Server) portalRoutes() {
	e := s.e
	e.GET("/static/*", echo.WrapHandler(s.cfg.Portal.Assets))
	csrf := s.csrf()
	e.GET("/", s.startPage, csrf)
	e.POST("/demo/sign-in", s.demoSignIn, csrf)
	e.GET("/portal/session/:token", s.openPortalSession, csrf)
	e.POST("/portal/sign-out", s.signOut, csrf)

	p := e.Group("/portal", csrf, s.requireCustomer)
	p.GET("", s.dashboard)
	p.GET("/partials/balance", s.balancePartial)
	p.GET("/events", s.events)
	s.portalPages(p)
	s.billingRoutes(p)
	s.notificationRoutes(p)
}

// cookieSessionID is the session id the request's cookie carries ("" for
// none, or a cookie that does not decode with the server's keys), whether
// or not that session is still live.
func (s *Server) cookieSessionID(c echo.Context) string {
	sess, _ := s.sessions.Get(c.Request(), sessionName)
	id, _ := sess.Values["sid"].(string)
	return id
}

// session reads the request's portal session: the id in the cookie, then
// its row. ok is false when nobody is signed in: no cookie, or a session
// that is unknown, ended (signed out, revoked, replaced), idle for longer
// than the idle timeout or older than the maximum age. ps is filled in
// whenever the row exists.
func (s *Server) session(c echo.Context) (sess *sessions.Session, ps portalSession, ok bool, err error) {
	sess, _ = s.sessions.Get(c.Request(), sessionName)
	id, _ := sess.Values["sid"].(string)
	if id == "" {
		return sess, ps, false, nil
	}
	ps, ok, err = s.findSession(c.Request().Context(), id)
	return sess, ps, ok, err
}

// findSession reads a session by its id and says whether it is live now.
func (s *Server) findSession(ctx context.Context, id string) (portalSession, bool, error) {
	row, err := s.portal.FindCustomerSession(ctx, id)
	if billing.ErrorCode(err) == billing.CodeNotFound {
		return portalSession{ID: id}, false, nil
	}
	if err != nil {
		return portalSession{}, false, err
	}
	ps := portalSession{ID: id, CustomerID: row.CustomerID, ReturnURL: row.ReturnURL, Flow: row.Flow, SignedIn: row.CreatedAt, LastSeen: row.LastSeenAt,
		ReadOnlyBy: row.ReadOnlyBy}
	return ps, row.Live(time.Now(), s.cfg.Portal.IdleTimeout), nil
}

// requireCustomer lets signed-in customers through and keeps their session
// alive; anyone else is sent to the start page.
func (s *Server) requireCustomer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, ps, ok, err := s.session(c)
		if err != nil {
			return err
		}
		if !ok {
			if c.Request().Header.Get("HX-Request") == "true" {
				c.Response().Header().Set("HX-Redirect", "/?signed_out=1")
				return c.NoContent(http.StatusUnauthorized)
			}
			if c.Path() == "/portal/events" || c.Path() == "/portal/partials/balance" {
				return c.NoContent(http.StatusUnauthorized)
			}
			return c.Redirect(http.StatusSeeOther, "/?signed_out=1")
		}
		// Move the idle timer at most once a minute (each move is a write).
		// The live balance (its stream and its polling) is not the
		// customer's doing: an unattended tab must still time out.
		background := c.Path() == "/portal/events" || c.Path() == "/portal/partials/balance"
		if now := time.Now(); now.Sub(ps.LastSeen) > time.Minute && !background {
			if err := s.portal.TouchCustomerSession(c.Request().Context(), ps.ID, now); err != nil {
				return err
			}
		}
		c.Set(ctxCustomer, ps)
		c.Set(ctxSession, sess)
		if ps.ReadOnlyBy != "" {
			switch c.Request().Method {
			case http.MethodGet, http.MethodHead:
			default:
				return errReadOnlyView
			}
		}
		return next(c)
	}
}

func currentCustomer(c echo.Context) portalSession {
	ps, _ := c.Get(ctxCustomer).(portalSession)
	return ps
}

// signIn starts a fresh session for a customer: a new row and a new cookie
// (new session id, so a new CSRF token), so nothing from before the
// sign-in carries over. The session this browser had ends (a copy of its
// cookie must not outlive it); with replace, so do the customer's sessions
// in other browsers. required is what the action the customer was refused
// needed (a top-up flow's, 0 when not said).
func (s *Server) signIn(c echo.Context, customerID, returnURL, flow string, required billing.Credits, replace bool) error {
	now := time.Now()
	return s.startSession(c, billing.CustomerSession{CustomerID: customerID, ReturnURL: returnURL, Flow: flow,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.Portal.MaxAge)}, required, replace)
}

// startSession is signIn with the session's row given (an admin's
// read-only view sets ReadOnlyBy and a shorter life).
func (s *Server) startSession(c echo.Context, row billing.CustomerSession, required billing.Credits, replace bool) error {
	ctx := c.Request().Context()
	now, customerID := row.CreatedAt, row.CustomerID
	if old := s.cookieSessionID(c); old != "" {
		if err := s.portal.EndCustomerSession(ctx, old, now, billing.SessionReplaced); err != nil {
			return err
		}
		s.streams.endSession(old)
	}
	id, err := s.portal.StartCustomerSession(ctx, row, replace)
	if err != nil {
		return err
	}
	if replace {
		s.streams.endCustomer(customerID, id)
	}
	sess, _ := s.sessions.New(c.Request(), sessionName)
	sess.Values = map[any]any{"sid": id}
	if required > 0 {
		sess.Values["req"] = int64(required)
	}
	// The visitor's anonymous CSRF token has served its purpose.
	http.SetCookie(c.Response(), &http.Cookie{Name: "tally_csrf", Path: "/", MaxAge: -1})
	return sess.Save(c.Request(), c.Response())
}

// GET /portal/session/:token opens a single-use sign-in link.
func (s *Server) openPortalSession(c echo.Context) error {
	in, err := s.portal.UsePortalSession(c.Request().Context(), c.Param("token"))
	// A made-up link is a failed attempt; a used or expired one was real
	// (someone opened billing twice, or late) and guesses nothing.
	if billing.ErrorCode(err) == billing.CodeNotFound {
		if err := s.authFailed(c, err); billing.ErrorCode(err) == billing.CodeRateLimited {
			return err
		}
	}
	if err != nil {
		return s.linkError(c, err)
	}
	var required billing.Credits
	if v, err := billing.ParseCredits(c.QueryParam("required")); err == nil && v > 0 && in.Flow == "top_up" {
		required = v
	}
	// A newly opened link ends the customer's other sessions: opening
	// billing again is how a customer gets rid of a session left open (or
	// copied) elsewhere.
	if err := s.signIn(c, in.CustomerID, in.ReturnURL, in.Flow, required, true); err != nil {
		return err
	}
	target := "/portal"
	if in.Flow != "" {
		target = flowTarget(in.Flow)
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// flowTarget is the first page of a portal session's flow.
func flowTarget(flow string) string {
	switch flow {
	case "top_up":
		return "/portal/top-up"
	}
	return "/portal"
}

func (s *Server) linkError(c echo.Context, err error) error {
	sh := s.publicShell(c, "Sign-in link")
	// A customer still signed in (the link opened twice, or Back pressed
	// after it) gets their billing and the way back to the product.
	if _, ps, ok, _ := s.session(c); ok {
		sh.ReturnURL, sh.SignedIn = ps.ReturnURL, true
	}
	switch billing.ErrorCode(err) {
	case billing.CodeLinkUsed:
		return render(c, http.StatusGone, views.ErrorPage(sh, http.StatusGone, "This link has already been used",
			"For your security, each billing link works once. Go back to "+sh.ProductName+" and open billing again to get a new one."))
	case billing.CodeLinkExpired:
		return render(c, http.StatusGone, views.ErrorPage(sh, http.StatusGone, "This link has expired",
			"Billing links work for five minutes. Go back to "+sh.ProductName+" and open billing again to get a new one."))
	case billing.CodeNotFound:
		return render(c, http.StatusNotFound, views.ErrorPage(sh, http.StatusNotFound, "This link is not valid",
			"Check that you copied the whole link, or open billing again from "+sh.ProductName+"."))
	}
	return err
}

// POST /portal/sign-out ends the session: its row (so every copy of the
// cookie stops working), its live balance streams and the cookie.
func (s *Server) signOut(c echo.Context) error {
	sess, ps, _, err := s.session(c)
	if err != nil {
		return err
	}
	if ps.ID != "" {
		if err := s.portal.EndCustomerSession(c.Request().Context(), ps.ID, time.Now(), billing.SessionSignedOut); err != nil {
			return err
		}
		s.streams.endSession(ps.ID)
	}
	sess.Options.MaxAge = -1
	sess.Values = map[any]any{}
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	if ps.ReturnURL != "" {
		return c.Redirect(http.StatusSeeOther, ps.ReturnURL)
	}
	return c.Redirect(http.StatusSeeOther, "/?signed_out=1")
}

// GET / is the start page: in demo mode, the demo customers with a sign-in
// button each; otherwise a pointer back to the product.
func (s *Server) startPage(c echo.Context) error {
	sh := s.publicShell(c, "Billing")
	if c.QueryParam("signed_out") != "" {
		sh.Flash = &views.Flash{Kind: "info", Message: "You are signed out. Open billing from " + sh.ProductName + " to sign in again."}
	}
	var cards []views.DemoCustomer
	if s.cfg.Portal.Demo {
		cs, _, err := s.ledger.FindCustomers(c.Request().Context(), billing.CustomerFilter{Limit: 100})
		if err != nil {
			return err
		}
		for _, cu := range cs {
			if !s.demoCustomer(cu) {
				continue
			}
			b, err := s.ledger.Balance(c.Request().Context(), cu.ID)
			if err != nil {
				return err
			}
			cards = append(cards, views.DemoCustomer{ID: cu.ID, Name: cu.Name, Email: cu.Email, ExternalID: cu.ExternalID, Balance: b.Balance})
		}
	}
	return render(c, http.StatusOK, views.StartPage(sh, cards))
}

// POST /demo/sign-in signs in as a demo customer (demo mode only).
func (s *Server) demoSignIn(c echo.Context) error {
	if !s.cfg.Portal.Demo {
		return billing.Errorf(billing.CodeNotFound, "Not found.")
	}
	cu, err := s.ledger.FindCustomer(c.Request().Context(), c.FormValue("customer"))
	if billing.ErrorCode(err) == billing.CodeCustomerNotFound {
		return s.authFailed(c, err)
	}
	if err != nil {
		return err
	}
	if !s.demoCustomer(cu) {
		return billing.Errorf(billing.CodeNotFound, "Not found.")
	}
	// Demo customers are shared by everyone trying the demo: a demo
	// sign-in does not sign the others out.
	if err := s.signIn(c, cu.ID, "", "", 0, false); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/portal")
}

// demoCustomer reports whether the demo start page offers the customer.
func (s *Server) demoCustomer(cu billing.Customer) bool {
	if len(s.cfg.Portal.DemoCustomers) == 0 {
		return true
	}
	return slices.Contains(s.cfg.Portal.DemoCustomers, cu.ExternalID)
}

// publicShell is the frame of a page nobody needs to be signed in for.
func (s *Server) publicShell(c echo.Context, title string) views.Shell {
	a := s.cfg.Portal.Assets
	tz := ""
	if ck, err := c.Cookie("tz"); err == nil {
		tz, _ = url.QueryUnescape(ck.Value)
	}
	csrf, _ := c.Get("csrf").(string)
	return views.Shell{
		Title: title,
		Assets: views.AssetURLs{CSS: a.URL("app.css"), JS: a.URL("app.js"), HTMX: a.URL("vendor/htmx.min.js"),
			Icon: a.URL("favicon.svg")},
		CSRF:        csrf,
		Fmt:         views.NewFmt(c.Request().Header.Get("Accept-Language"), tz),
		ProductName: s.cfg.Portal.ProductName,
		Demo:        s.cfg.Portal.Demo,
	}
}

// shell is the frame of a portal page: the public frame plus the signed-in
// customer, their live balance, the active tab, the billing notices and
// any flash message (which it consumes).
func (s *Server) shell(c echo.Context, title, nav string) (views.Shell, error) {
	sh, err := s.liveShell(c, title, nav)
	if err != nil {
		return sh, err
	}
	if sess, ok := c.Get(ctxSession).(*sessions.Session); ok {
		if fl := sess.Flashes(); len(fl) > 0 {
			if m, ok := fl[0].(string); ok {
				kind, msg, _ := strings.Cut(m, "|")
				sh.Flash = &views.Flash{Kind: kind, Message: msg}
			}
			sess.Save(c.Request(), c.Response())
		}
	}
	return sh, nil
}

// liveShell is shell without the flash message: for the parts of a page
// that fetch themselves again when the balance changes, which must not
// swallow a message meant for the next page.
func (s *Server) liveShell(c echo.Context, title, nav string) (views.Shell, error) {
	sh := s.publicShell(c, title)
	ps := currentCustomer(c)
	cu, err := s.ledger.FindCustomer(c.Request().Context(), ps.CustomerID)
	if err != nil {
		return sh, err
	}
	bv, err := s.balanceView(c.Request().Context(), ps.CustomerID)
	if err != nil {
		return sh, err
	}
	name := cu.Name
	if name == "" {
		name = cu.Email
	}
	if name == "" {
		name = cu.ExternalID
	}
	sh.Customer = &views.CustomerHeader{ID: cu.ID, Name: name, Email: cu.Email, Balance: bv}
	if sh.Customer.Unread, err = s.unread(c.Request().Context(), ps.CustomerID); err != nil {
		return sh, err
	}
	sh.Payments = s.cfg.Payments.Service != nil
	sh.Plans = s.plansOffered(c.Request().Context()) // portal_plan.go
	if sh.Notices, err = s.notices(c.Request().Context(), ps.CustomerID); err != nil {
		return sh, err
	}
	fr, err := s.store.FindFreeze(c.Request().Context(), ps.CustomerID)
	if err != nil {
		return sh, err
	}
	sh.Frozen = fr != nil
	sh.ReturnURL, sh.Nav, sh.ReadOnly = ps.ReturnURL, nav, ps.ReadOnlyBy != ""
	return sh, nil
}

// flash keeps a message for the next page the customer sees (after a redirect).
func flash(c echo.Context, kind, message string) {
	if sess, ok := c.Get(ctxSession).(*sessions.Session); ok {
		sess.AddFlash(kind + "|" + message)
		sess.Save(c.Request(), c.Response())
	}
}

// balanceView is the header balance with its warning state: low by the
// customer's own threshold, or by default below 10% of their last top-up
// or within billing.LowBalanceDays of running out at their current pace.
func (s *Server) balanceView(ctx context.Context, customerID string) (views.BalanceView, error) {
	b, err := s.ledger.Balance(ctx, customerID)
	if err != nil {
		return views.BalanceView{}, err
	}
	set, err := s.portal.FindCustomerSettings(ctx, customerID)
	if err != nil {
		return views.BalanceView{}, err
	}
	last, err := s.portal.LastTopUp(ctx, customerID)
	if err != nil {
		return views.BalanceView{}, err
	}
	// The current pace: the last 7 days of usage rollups (a few rows).
	now := s.store.Now()
	days, err := s.ledger.FindUsageDays(ctx, customerID, now.UTC().AddDate(0, 0, -7).Format(time.DateOnly), now.UTC().Format(time.DateOnly))
	if err != nil {
		return views.BalanceView{}, err
	}
	perDay := billing.RateOver(days, 7, now).PerDay
	return views.BalanceView{Balance: b.Balance, Available: b.Available, Held: b.Held,
		Depleted: b.Available <= 0, Low: billing.LowBalanceWith(set, s.policy(ctx).LowBalanceLine(last), b.Available, perDay)}, nil
}

// GET /portal/partials/balance is the header balance alone (the polling
// fallback of the live balance).
func (s *Server) balancePartial(c echo.Context) error {
	bv, err := s.balanceView(c.Request().Context(), currentCustomer(c).CustomerID)
	if err != nil {
		return err
	}
	sh := s.publicShell(c, "")
	return render(c, http.StatusOK, views.BalancePillInner(sh.Fmt, bv))
}

// streamWriteTimeout bounds each write to an event stream: a client that
// stops reading loses its stream instead of holding a goroutine forever.
const streamWriteTimeout = 10 * time.Second

// GET /portal/events streams the header balance as server-sent events: one
// right away and one after every committed change to the wallet. A session
// may hold MaxStreamsPerSession of them and the server MaxStreams; a stream
// ends with its session: at once when it is signed out or replaced here,
// within a keepalive interval when it ends elsewhere or times out.
func (s *Server) events(c echo.Context) error {
	ps := currentCustomer(c)
	pc := s.cfg.Portal
	st, err := s.streams.open(ps.ID, ps.CustomerID, pc.MaxStreamsPerSession, pc.MaxStreams)
	if err != nil {
		return err
	}
	defer s.streams.close(st)
	sh := s.publicShell(c, "")
	return s.serveStream(c, st, liveStreamSpec{
		data: func(ctx context.Context) (string, error) {
			bv, err := s.balanceView(ctx, ps.CustomerID)
			if err != nil {
				return "", err
			}
			var html strings.Builder
			err = views.BalancePillInner(sh.Fmt, bv).Render(ctx, &html)
			return html.String(), err
		},
		// Revoked from the CLI or another process, or timed out while the
		// tab sat unattended: the stream ends with the session.
		live: func(ctx context.Context) bool {
			_, live, err := s.findSession(ctx, ps.ID)
			return err != nil || live
		},
	})
}

// render writes a templ component as HTML.
func render(c echo.Context, status int, comp templ.Component) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return comp.Render(c.Request().Context(), c.Response())
}

// pageError renders errors on pages: a full error page, or for htmx
// requests a flash message swapped into #flash.
func (s *Server) pageError(c echo.Context, status int, err error) error {
	if strings.HasPrefix(c.Request().URL.Path, "/admin") {
		return s.adminPageError(c, status, err)
	}
	msg := billing.ErrorMessage(err)
	if c.Request().Header.Get("HX-Request") == "true" {
		c.Response().Header().Set("HX-Retarget", "#flash")
		c.Response().Header().Set("HX-Reswap", "innerHTML")
		return render(c, status, views.FlashMessage(views.Flash{Kind: "error", Message: msg}))
	}
	sh := s.publicShell(c, "Error")
	// A signed-in customer gets the way to their billing (and back to the
	// product). An address no route knows never met requireCustomer, so
	// its session is looked up here.
	ps, ok := c.Get(ctxCustomer).(portalSession)
	if !ok && status == http.StatusNotFound {
		_, ps, ok, _ = s.session(c)
	}
	if ok {
		sh.ReturnURL, sh.SignedIn = ps.ReturnURL, true
	}
	heading := "Something went wrong"
	switch {
	case status == http.StatusNotFound:
		heading, msg = "Page not found", "The page you asked for does not exist."
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		// The address (a stale or edited link), not the server.
		heading = "This page address is not valid"
	case status == http.StatusForbidden:
		heading = "Please try again"
	case status == http.StatusTooManyRequests:
		heading = "Too many attempts"
	case status >= 500 && billing.ErrorCode(err) == billing.CodeInternal:
		msg = "We could not load this page. Nothing was changed; please try again in a moment."
	}
	return render(c, status, views.ErrorPage(sh, status, heading, msg))
}

// validReturnURL accepts absolute http(s) URLs only, so a sign-in link can
// never send a customer to javascript: or a relative path of ours.
func validReturnURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return billing.Errorf(billing.CodeValidation, "return_url must be an absolute http(s) URL of your product").With("param", "return_url")
	}
	return nil
}

// portalSessionRequest is the body of POST /api/v1/portal-sessions.
type portalSessionRequest struct {
	Customer  string `json:"customer"`
	ReturnURL string `json:"return_url"`
	Flow      string `json:"flow,omitempty"`
	// Required is what the refused action needed (the 402's required), for
	// the top-up page to say and to suggest a pack that covers it.
	Required *billing.Credits `json:"required,omitempty"`
}

// validFlows are the portal flows a session may open: the overview, or
// straight to the focused top-up (back to return_url once it succeeds).
var validFlows = map[string]bool{"": true, "top_up": true}

// POST /api/v1/portal-sessions makes a single-use, five-minute sign-in link
// for a customer, as a product's backend asks for one when the customer
// clicks "Billing".
func (s *Server) createPortalSession(c echo.Context) error {
	var req portalSessionRequest
	if err := DecodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if req.Customer == "" {
		return billing.Errorf(billing.CodeValidation, "customer is required").With("param", "customer")
	}
	if err := validReturnURL(req.ReturnURL); err != nil {
		return err
	}
	if !validFlows[req.Flow] {
		return billing.Errorf(billing.CodeValidation, "flow %q is not a portal flow", req.Flow).With("param", "flow")
	}
	if req.Required != nil && (*req.Required <= 0 || *req.Required > billing.MaxCredits) {
		return billing.Errorf(billing.CodeValidation, "required must be more than zero credits (the 402's required)").With("param", "required")
	}
	cu, err := s.ledger.FindCustomer(c.Request().Context(), req.Customer)
	if err != nil {
		return err
	}
	token, expires, err := s.portal.CreatePortalSession(c.Request().Context(), cu.ID, req.ReturnURL, req.Flow, billing.PortalSessionTTL)
	if err != nil {
		return err
	}
	base := strings.TrimRight(s.cfg.Portal.BaseURL, "/")
	if base == "" {
		base = "http://" + c.Request().Host
	}
	link := base + "/portal/session/" + token
	out := map[string]any{"object": "portal_session", "customer": cu.ID, "return_url": req.ReturnURL, "flow": req.Flow, "expires_at": expires}
	if req.Required != nil {
		// Carried on the link: it only shapes what the page says and suggests.
		link += "?required=" + req.Required.String()
		out["required"] = *req.Required
	}
	out["url"] = link
	return writeJSON(c, http.StatusCreated, out)
}

var errNotSignedIn = errors.New("not signed in")

var errReadOnlyView = billing.Errorf(billing.CodeForbidden, "This is an admin's read-only view of the portal: nothing can be changed here.")
