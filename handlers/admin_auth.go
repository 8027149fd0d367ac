package handlers

import (
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/views"
)

// AdminStore is what the admin console needs from storage beyond the
// ledger; *db.DB implements it.
type AdminStore interface {
	billing.Admins
	billing.AdminStaff
	billing.AdminReads
	billing.Finance
}

// AdminConfig configures the admin console's sessions.
type AdminConfig struct {
	IdleTimeout time.Duration // sign out after this long without a request (default 30 min)
	MaxAge      time.Duration // sign out after this long in any case (default 12 h)
}

const (
	adminCookie     = "tally_admin"
	ctxAdmin        = "tally.admin"
	ctxAdminSession = "tally.admin_session"
)

// Per account, an admin may fail to sign in adminFailBurst times at once,
// then once more every adminFailEvery: a password guesser gets a handful of
// tries an hour, the owner of the account a clear message and a wait. The
// per-address throttle of every failed authentication (s.failures) applies
// as well, so one address cannot try many accounts either.
const (
	adminFailBurst = 5
	adminFailEvery = 5 * time.Minute
)

// adminState is the admin console's in-process state.
type adminState struct {
	accounts failThrottle // failed sign-ins per e-mail address
}

// adminCtx is the signed-in admin of a request.
type adminCtx struct {
	SessionID string
	User      billing.AdminUser
}

func currentAdmin(c echo.Context) adminCtx {
	a, _ := c.Get(ctxAdmin).(adminCtx)
	return a
}

func (s *Server) adminDefaults() {
	ac := &s.cfg.Admin
	if ac.IdleTimeout <= 0 {
		ac.IdleTimeout = 30 * time.Minute
	}
	if ac.MaxAge <= 0 {
		ac.MaxAge = 12 * time.Hour
	}
	s.admin.accounts.burst, s.admin.accounts.every = adminFailBurst, adminFailEvery
}

// adminCookieOptions are the admin cookie's: sent to /admin only, never
// with a request another site started (SameSite=Strict), and as long-lived
// as a session may be.
func (s *Server) adminCookieOptions() *sessions.Options {
	opts := *s.sessions.Options
	opts.Path, opts.MaxAge, opts.SameSite = "/admin", int(s.cfg.Admin.MaxAge.Seconds()), http.SameSiteStrictMode
	return &opts
}

// adminCookieID is the admin session id the request's cookie carries.
func (s *Server) adminCookieID(c echo.Context) string {
	sess, _ := s.sessions.Get(c.Request(), adminCookie)
	id, _ := sess.Values["sid"].(string)
	return id
}

// adminSession reads the request's admin session and its admin. ok is false
// when nobody is signed in: no cookie, or a session that is unknown, ended,
// idle past the idle timeout or older than the maximum age.
func (s *Server) adminSession(c echo.Context) (cookie *sessions.Session, a adminCtx, ok bool, err error) {
	cookie, _ = s.sessions.Get(c.Request(), adminCookie)
	cookie.Options = s.adminCookieOptions()
	id, _ := cookie.Values["sid"].(string)
	if id == "" {
		return cookie, a, false, nil
	}
	ctx := c.Request().Context()
	row, err := s.store.FindAdminSession(ctx, id)
	if billing.ErrorCode(err) == billing.CodeNotFound {
		return cookie, a, false, nil
	}
	if err != nil {
		return cookie, a, false, err
	}
	a.SessionID = id
	if !row.Live(time.Now(), s.cfg.Admin.IdleTimeout) {
		return cookie, a, false, nil
	}
	// The role is read on every request: a changed role applies at once,
	// and a disabled admin's session (which their disabling ended; one
	// somehow still alive too) signs nobody in.
	if a.User, err = s.store.FindAdmin(ctx, row.AdminID); err != nil {
		return cookie, a, false, err
	}
	if !a.User.Active() {
		return cookie, a, false, nil
	}
	if now := time.Now(); now.Sub(row.LastSeenAt) > time.Minute {
		if err := s.store.TouchAdminSession(ctx, id, now); err != nil {
			return cookie, a, false, err
		}
	}
	return cookie, a, true, nil
}

// supportMayPost are the only posts a support admin may make: their own
// sign-out, and opening a customer's portal read-only (which writes a
// read-only session and an audit record, never the customer's data).
var supportMayPost = map[string]bool{"/admin/sign-out": true, "/admin/customers/:id/view-portal": true}

var (
	errAdminRole    = billing.Errorf(billing.CodeForbidden, "Your role can't do this. Ask an owner of this Tally.")
	errSupportWrite = billing.Errorf(billing.CodeForbidden, "Support accounts are read-only: they can look, not change anything.")
)

// requireAdmin lets through admins with at least the role min. Nobody
// signed in (a customer's portal session is no admin session) is sent to
// the sign-in page; a signed-in admin without the role gets 403. A support
// admin never gets past it with anything but a read.
func (s *Server) requireAdmin(min string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			cookie, a, ok, err := s.adminSession(c)
			if err != nil {
				return err
			}
			if !ok {
				target := "/admin/sign-in"
				if c.Request().Method == http.MethodGet {
					target += "?next=" + url.QueryEscape(c.Request().URL.RequestURI())
				}
				if c.Request().Header.Get("HX-Request") == "true" {
					c.Response().Header().Set("HX-Redirect", target)
					return c.NoContent(http.StatusUnauthorized)
				}
				if c.Request().Method != http.MethodGet && c.Request().Method != http.MethodHead {
					return billing.Errorf(billing.CodeUnauthorized, "Your admin session has ended. Sign in again.")
				}
				return c.Redirect(http.StatusSeeOther, target)
			}
			c.Set(ctxAdmin, a)
			c.Set(ctxAdminSession, cookie)
			switch c.Request().Method {
			case http.MethodGet, http.MethodHead:
			default:
				if a.User.Role == billing.RoleSupport && !supportMayPost[c.Path()] {
					return errSupportWrite
				}
			}
			if !billing.RoleAtLeast(a.User.Role, min) {
				return errAdminRole
			}
			return next(c)
		}
	}
}

// adminFlash keeps a message for the admin's next page.
func adminFlash(c echo.Context, kind, message string) {
	if sess, ok := c.Get(ctxAdminSession).(*sessions.Session); ok {
		sess.AddFlash(kind + "|" + message)
		sess.Save(c.Request(), c.Response())
	}
}

// adminFlashTo keeps a message for the admin's next page and sends the
// admin there (303: the page after a form is fetched with GET).
func adminFlashTo(c echo.Context, kind, message, path string) error {
	adminFlash(c, kind, message)
	return c.Redirect(http.StatusSeeOther, path)
}

// adminShell is the frame of an admin page: the signed-in admin, the
// active section and any flash message (which it consumes).
func (s *Server) adminShell(c echo.Context, title, nav string) views.AdminShell {
	p := s.publicShell(c, title)
	sh := views.AdminShell{Title: title, Assets: p.Assets, CSRF: p.CSRF, Fmt: p.Fmt, ProductName: p.ProductName, Demo: p.Demo, Nav: nav}
	if a, ok := c.Get(ctxAdmin).(adminCtx); ok {
		sh.Admin = &views.AdminHeader{ID: a.User.ID, Email: a.User.Email, Role: a.User.Role}
	}
	if sess, ok := c.Get(ctxAdminSession).(*sessions.Session); ok {
		if fl := sess.Flashes(); len(fl) > 0 {
			if m, ok := fl[0].(string); ok {
				kind, msg, _ := strings.Cut(m, "|")
				sh.Flash = &views.Flash{Kind: kind, Message: msg}
			}
			sess.Save(c.Request(), c.Response())
		}
	}
	return sh
}

// audit records an admin action of the request's admin.
func (s *Server) audit(c echo.Context, action, customer, reason, before, after string) error {
	return s.store.RecordAudit(c.Request().Context(), billing.AuditRecord{Actor: billing.AdminActor(currentAdmin(c).User.ID),
		Action: action, Customer: customer, Reason: reason, Before: before, After: after})
}

// GET /admin/sign-in.
func (s *Server) adminSignInPage(c echo.Context) error {
	if _, _, ok, err := s.adminSession(c); err == nil && ok {
		return c.Redirect(http.StatusSeeOther, adminNext(c.QueryParam("next")))
	}
	f := views.AdminSignInForm{Next: adminNext(c.QueryParam("next"))}
	if c.QueryParam("signed_out") != "" {
		f.Info = "You are signed out."
	}
	return render(c, http.StatusOK, views.AdminSignInPage(s.adminShell(c, "Sign in", ""), f))
}

// adminNext is where a sign-in goes: a page of the console, never elsewhere.
func adminNext(next string) string {
	if strings.HasPrefix(next, "/admin/") && !strings.HasPrefix(next, "/admin/sign-") && !strings.ContainsAny(next, "\\") && !strings.HasPrefix(next, "//") {
		return next
	}
	return "/admin/customers"
}

// POST /admin/sign-in checks an e-mail and password, throttled per account
// and per address, and starts a fresh server-side session.
func (s *Server) adminSignIn(c echo.Context) error {
	email := strings.ToLower(strings.TrimSpace(c.FormValue("email")))
	pw := c.FormValue("password")
	f := views.AdminSignInForm{Email: email, Next: adminNext(c.FormValue("next"))}
	sh := s.adminShell(c, "Sign in", "")
	now := time.Now()
	if email == "" || pw == "" {
		if email == "" {
			f.Errors = map[string]string{"email": "Enter your e-mail address."}
		} else {
			f.Errors = map[string]string{"password": "Enter your password."}
		}
		return render(c, http.StatusUnprocessableEntity, views.AdminSignInPage(sh, f))
	}
	wait := func(d time.Duration) string {
		if m := int(math.Ceil(d.Minutes())); m > 1 {
			return itoa(m) + " minutes"
		}
		return "a minute"
	}
	if blocked, d := s.admin.accounts.blocked(email, now); blocked {
		f.Error = "Too many failed sign-ins for this account. For its safety, try again in " + wait(d) + "."
		c.Response().Header().Set("Retry-After", itoa(int(math.Ceil(d.Seconds()))))
		return render(c, http.StatusTooManyRequests, views.AdminSignInPage(sh, f))
	}
	if blocked, d := s.failures.blocked(clientKey(c), now); blocked {
		f.Error = "Too many failed sign-ins from your network. Try again in " + wait(d) + "."
		c.Response().Header().Set("Retry-After", itoa(int(math.Ceil(d.Seconds()))))
		return render(c, http.StatusTooManyRequests, views.AdminSignInPage(sh, f))
	}
	user, err := s.store.AuthenticateAdmin(c.Request().Context(), email, pw)
	if billing.ErrorCode(err) == billing.CodeUnauthorized {
		s.admin.accounts.fail(email, now)
		s.failures.fail(clientKey(c), now)
		f.Error = "That e-mail and password don't match an admin account."
		return render(c, http.StatusUnauthorized, views.AdminSignInPage(sh, f))
	}
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// A fresh session and cookie: nothing from before the sign-in carries over.
	if old := s.adminCookieID(c); old != "" {
		if err := s.store.EndAdminSession(ctx, old, now, billing.SessionReplaced); err != nil {
			return err
		}
	}
	// The new session and its sign-in record commit together.
	signIn := billing.WithAudit(ctx, billing.AuditRecord{Actor: billing.AdminActor(user.ID), Action: billing.AuditSignIn})
	id, err := s.store.StartAdminSession(signIn, billing.AdminSession{AdminID: user.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.Admin.MaxAge)})
	if err != nil {
		return err
	}
	cookie, _ := s.sessions.New(c.Request(), adminCookie)
	cookie.Values = map[any]any{"sid": id}
	cookie.Options = s.adminCookieOptions()
	http.SetCookie(c.Response(), &http.Cookie{Name: "tally_csrf", Path: "/", MaxAge: -1})
	if err := cookie.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	c.Set(ctxAdmin, adminCtx{SessionID: id, User: user})
	return c.Redirect(http.StatusSeeOther, f.Next)
}

// POST /admin/sign-out ends the session at once (its row, so every copy of
// the cookie stops working) and the cookie.
func (s *Server) adminSignOut(c echo.Context) error {
	a := currentAdmin(c)
	if err := s.store.EndAdminSession(s.audited(c, billing.AuditSignOut, "", "", "", ""), a.SessionID, time.Now(), billing.SessionSignedOut); err != nil {
		return err
	}
	if cookie, ok := c.Get(ctxAdminSession).(*sessions.Session); ok {
		cookie.Options.MaxAge = -1
		cookie.Values = map[any]any{}
		if err := cookie.Save(c.Request(), c.Response()); err != nil {
			return err
		}
	}
	return c.Redirect(http.StatusSeeOther, "/admin/sign-in?signed_out=1")
}

// POST /admin/admins/:id/sign-out (owners) ends every session of an admin
// at once: their next request finds no session.
func (s *Server) adminSignOutEverywhere(c echo.Context) error {
	ctx := c.Request().Context()
	target, err := s.store.FindAdmin(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	n, err := s.store.EndAdminSessions(s.audited(c, billing.AuditSignOutAll, "", "", target.Email, ""), target.ID, time.Now(), billing.SessionRevoked)
	if err != nil {
		return err
	}
	if target.ID == currentAdmin(c).User.ID {
		return c.Redirect(http.StatusSeeOther, "/admin/sign-in?signed_out=1")
	}
	return adminFlashTo(c, "success", target.Email+" is signed out everywhere ("+plural(n, "session")+" ended).", "/admin/admins")
}

// adminPageError renders an error met in the console in the console's frame.
func (s *Server) adminPageError(c echo.Context, status int, err error) error {
	msg := billing.ErrorMessage(err)
	if c.Request().Header.Get("HX-Request") == "true" {
		c.Response().Header().Set("HX-Retarget", "#flash")
		c.Response().Header().Set("HX-Reswap", "innerHTML")
		return render(c, status, views.FlashMessage(views.Flash{Kind: "error", Message: msg}))
	}
	heading := "Something went wrong"
	switch {
	case status == http.StatusNotFound:
		heading = "Not found"
		if billing.ErrorCode(err) == billing.CodeNotFound {
			msg = "The page you asked for does not exist."
		}
	case status == http.StatusForbidden:
		heading = "Not allowed"
	case status == http.StatusUnauthorized:
		heading = "Signed out"
	case status == http.StatusTooManyRequests:
		heading = "Too many attempts"
	case status >= 500 && billing.ErrorCode(err) == billing.CodeInternal:
		msg = "Nothing was changed; please try again in a moment."
	}
	return render(c, status, views.AdminErrorPage(s.adminShell(c, heading, ""), status, heading, msg))
}
