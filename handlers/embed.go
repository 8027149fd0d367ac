package handlers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/static"
	"github.com/tally-billing/tally/views"
)

// embedStore is what the balance widget needs from storage beyond Store
// (*db.DB implements it): the allowed origins of API keys.
type embedStore interface {
	EmbedKeyAllows(ctx context.Context, keyID, origin string) (live, allowed bool, err error)
	OriginEmbeds(ctx context.Context, origin string) (bool, error)
	FindAPIKeys(ctx context.Context) ([]billing.APIKey, error)
}

// embedHandlers serve the embeddable balance widget and the embed API.
type embedHandlers struct {
	s      *Server
	store  embedStore
	tokens embedTokens
}

// registerEmbed mounts the widget (widget.js, /embed/*) and the embed API
// (/api/v1/embed-tokens, /api/v1/embed/*).
func (s *Server) registerEmbed() {
	es, ok := s.store.(embedStore)
	if !ok {
		return
	}
	key, err := s.portal.Secret(context.Background(), "embed_token_key", 32)
	if err != nil {
		// Tokens then work in this process until it restarts.
		s.log.Warn("embed token key not stored; embed tokens end at restart", "err", err)
		key = make([]byte, 32)
		rand.Read(key)
	}
	h := &embedHandlers{s: s, store: es, tokens: embedTokens{key: key}}
	e := s.e
	// An embed token shows a customer's balance and lets them top up with
	// their saved card after a confirmation: like a portal sign-in link, so
	// portal keys (and admin keys) mint them, never metering keys.
	e.POST("/api/v1/embed-tokens", h.createToken, s.requireKey(billing.ScopePortal))
	e.GET("/api/v1/embed/balance", h.apiBalance)
	e.GET("/api/v1/embed/events", h.apiEvents)
	e.OPTIONS("/api/v1/embed/balance", h.preflight)
	e.OPTIONS("/api/v1/embed/events", h.preflight)

	e.GET("/widget.js", h.script)
	e.GET("/embed/widget", h.widget)
	e.GET("/embed/events", h.widgetEvents)
	e.POST("/embed/top-ups/confirm", h.confirmTopUp)
	e.POST("/embed/top-ups", h.topUp)
	e.POST("/embed/portal-link", h.portalLink)
}

// embedTokenRequest is the body of POST /api/v1/embed-tokens.
type embedTokenRequest struct {
	Customer string `json:"customer"`
	Origin   string `json:"origin"`
}

// POST /api/v1/embed-tokens mints a 15-minute token for one customer and
// one origin the calling key lists among its allowed origins.
func (h *embedHandlers) createToken(c echo.Context) error {
	var req embedTokenRequest
	if err := DecodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if req.Customer == "" {
		return billing.Errorf(billing.CodeValidation, "customer is required").With("param", "customer")
	}
	origin, err := billing.ParseOrigin(req.Origin)
	if err != nil {
		return billing.Errorf(billing.CodeValidation, "%s", strings.Replace(billing.ErrorMessage(err), "allowed_origin", "origin", 1)).With("param", "origin")
	}
	k := apiKey(c)
	ctx := c.Request().Context()
	if _, allowed, err := h.store.EmbedKeyAllows(ctx, k.ID, origin); err != nil {
		return err
	} else if !allowed {
		return billing.Errorf(billing.CodeOriginNotAllowed,
			"This API key does not list %s among its allowed origins. Add it in the admin console (API keys), or create a key that lists it: `tally apikey create --scope portal --allowed-origin %s`.", origin, origin).
			With("param", "origin")
	}
	cu, err := h.s.ledger.FindCustomer(ctx, req.Customer)
	if err != nil {
		return err
	}
	token, exp := h.tokens.mint(k.ID, cu.ID, origin, h.s.store.Now(), billing.EmbedTokenTTL)
	return writeJSON(c, http.StatusCreated, map[string]any{"object": "embed_token", "token": token, "customer": cu.ID, "origin": origin, "expires_at": exp.UTC()})
}

// verify checks a token for a request: signature, expiry, the key still
// live and still listing the origin. api requests must also come from the
// token's origin when a browser sends one (a product's backend sends none).
func (h *embedHandlers) verify(c echo.Context, token string, api bool) (embedClaims, error) {
	cl, err := h.tokens.parse(token, h.s.store.Now())
	if billing.ErrorCode(err) == billing.CodeEmbedTokenInvalid {
		return cl, h.s.authFailed(c, err)
	}
	if err != nil {
		return cl, err
	}
	live, allowed, err := h.store.EmbedKeyAllows(c.Request().Context(), cl.Key, cl.Origin)
	if err != nil {
		return cl, err
	}
	if !live || !allowed {
		return cl, billing.Errorf(billing.CodeEmbedTokenRevoked, "The API key that minted this embed token was revoked or no longer lists %s.", cl.Origin)
	}
	if o := c.Request().Header.Get("Origin"); api && o != "" && o != cl.Origin {
		return cl, billing.Errorf(billing.CodeEmbedWrongOrigin, "This embed token is for pages of %s; this request came from %s.", cl.Origin, o)
	}
	return cl, nil
}

// apiToken is the embed token of an embed API request: the bearer, or
// ?token= (EventSource cannot set headers). It answers CORS for the
// token's origin only, errors included, so the page can read why.
func (h *embedHandlers) apiToken(c echo.Context) (embedClaims, error) {
	token, ok := bearer(c.Request().Header.Get("Authorization"))
	if !ok {
		token = c.QueryParam("token")
	}
	cl, err := h.verify(c, token, true)
	c.Response().Header().Add("Vary", "Origin")
	if o := c.Request().Header.Get("Origin"); o != "" && cl.Origin == o {
		c.Response().Header().Set("Access-Control-Allow-Origin", o)
	}
	if err != nil {
		return cl, err
	}
	if want := c.QueryParam("customer"); want != "" {
		cu, err := h.s.ledger.FindCustomer(c.Request().Context(), want)
		if err != nil && billing.ErrorCode(err) != billing.CodeCustomerNotFound {
			return cl, err
		}
		if err != nil || cu.ID != cl.Customer {
			return cl, billing.Errorf(billing.CodeEmbedWrongCustomer, "This embed token shows another customer's balance than %q.", want).With("param", "customer")
		}
	}
	return cl, nil
}

// OPTIONS /api/v1/embed/*: a CORS preflight carries no token, so it is
// answered for origins that some live key allows, and for no other.
func (h *embedHandlers) preflight(c echo.Context) error {
	c.Response().Header().Add("Vary", "Origin")
	o := c.Request().Header.Get("Origin")
	if o != "" {
		ok, err := h.store.OriginEmbeds(c.Request().Context(), o)
		if err != nil {
			return err
		}
		if ok {
			hd := c.Response().Header()
			hd.Set("Access-Control-Allow-Origin", o)
			hd.Set("Access-Control-Allow-Methods", "GET")
			hd.Set("Access-Control-Allow-Headers", "Authorization")
			hd.Set("Access-Control-Max-Age", "600")
		}
	}
	return c.NoContent(http.StatusNoContent)
}

// embedBalance is the JSON of GET /api/v1/embed/balance and of each event
// of GET /api/v1/embed/events: what the widget shows, for apps that draw
// their own.
type embedBalance struct {
	Object    string          `json:"object"`
	Customer  string          `json:"customer"`
	Balance   billing.Credits `json:"balance"`
	Available billing.Credits `json:"available"`
	Held      billing.Credits `json:"held"`
	Low       bool            `json:"low"`
	Depleted  bool            `json:"depleted"`
	Outlook   billing.Outlook `json:"outlook"`
	RunsOutAt *time.Time      `json:"runs_out_at"`
	PerDay    billing.Credits `json:"usage_per_day"`
	Summary   string          `json:"summary"`
	ExpiresAt time.Time       `json:"token_expires_at"`
}

// live reads what the widget shows: the portal's balance view (with its
// low-balance rule) and the overview's forecast.
func (h *embedHandlers) live(ctx context.Context, customer string, f views.Fmt) (views.WidgetLive, error) {
	s := h.s
	bv, err := s.balanceView(ctx, customer)
	if err != nil {
		return views.WidgetLive{}, err
	}
	b, err := s.ledger.Balance(ctx, customer)
	if err != nil {
		return views.WidgetLive{}, err
	}
	now := s.store.Now()
	usage, _, err := s.dashboardUsage(ctx, customer, now)
	if err != nil {
		return views.WidgetLive{}, err
	}
	lots := make([]billing.Lot, len(b.Lots))
	for i, l := range b.Lots {
		lots[i] = l.Lot
	}
	fc := billing.NewForecast(now, usage, lots, b.Available, views.DashboardTopUpUntil(f, now))
	return views.WidgetLive{Fmt: f, Balance: bv, Now: now, Forecast: fc}, nil
}

func (h *embedHandlers) balanceJSON(ctx context.Context, cl embedClaims) (embedBalance, error) {
	l, err := h.live(ctx, cl.Customer, views.NewFmt("en", ""))
	if err != nil {
		return embedBalance{}, err
	}
	p := l.Forecast.Primary()
	out := embedBalance{Object: "embed_balance", Customer: cl.Customer, Balance: l.Balance.Balance, Available: l.Balance.Available,
		Held: l.Balance.Held, Low: l.Balance.Low, Depleted: l.Balance.Depleted, Outlook: p.Outlook, PerDay: p.Rate,
		Summary: views.WidgetLasts(l), ExpiresAt: time.Unix(cl.Expires, 0).UTC()}
	if l.Balance.Depleted {
		out.Outlook = billing.OutlookDepleted
	}
	if p.Outlook == billing.OutlookRunsOut {
		t := p.RunsOut.UTC().Truncate(time.Microsecond) // the API's precision (it had nanoseconds)
		out.RunsOutAt = &t
	}
	return out, nil
}

// GET /api/v1/embed/balance (embed token as bearer).
func (h *embedHandlers) apiBalance(c echo.Context) error {
	cl, err := h.apiToken(c)
	if err != nil {
		return err
	}
	out, err := h.balanceJSON(c.Request().Context(), cl)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, out)
}

// GET /api/v1/embed/events?token=: the balance JSON as server-sent events.
func (h *embedHandlers) apiEvents(c echo.Context) error {
	cl, err := h.apiToken(c)
	if err != nil {
		return err
	}
	return h.stream(c, cl, func(ctx context.Context) (string, error) {
		out, err := h.balanceJSON(ctx, cl)
		if err != nil {
			return "", err
		}
		b, err := json.Marshal(out)
		return string(b), err
	})
}

// GET /embed/events?token=: the widget's balance block as server-sent events.
func (h *embedHandlers) widgetEvents(c echo.Context) error {
	// The widget's own frame asks (same origin): no Origin check here;
	// without CORS headers no other page can read the stream.
	cl, err := h.verify(c, c.QueryParam("token"), false)
	if err != nil {
		return err
	}
	compact := c.QueryParam("compact") == "1"
	f := views.NewFmt(c.Request().Header.Get("Accept-Language"), "")
	return h.stream(c, cl, func(ctx context.Context) (string, error) {
		l, err := h.live(ctx, cl.Customer, f)
		if err != nil {
			return "", err
		}
		var html strings.Builder
		err = views.WidgetLiveInner(l, compact).Render(ctx, &html)
		return html.String(), err
	})
}

// stream is the portal's live balance stream (serveStream) for an embed
// token, under the same caps (per token, as per session, and the
// server's total). It ends when the token expires or stops working; the
// widget reconnects with the refreshed token.
func (h *embedHandlers) stream(c echo.Context, cl embedClaims, data func(context.Context) (string, error)) error {
	s := h.s
	pc := s.cfg.Portal
	st, err := s.streams.open("embed:"+cl.ID, cl.Customer, pc.MaxStreamsPerSession, pc.MaxStreams)
	if err != nil {
		return err
	}
	defer s.streams.close(st)
	expires := time.NewTimer(time.Unix(cl.Expires, 0).Sub(s.store.Now()))
	defer expires.Stop()
	return s.serveStream(c, st, liveStreamSpec{data: data, ends: expires.C,
		// A revoked key, or an origin no longer listed, ends the stream.
		live: func(ctx context.Context) bool {
			live, allowed, err := h.store.EmbedKeyAllows(ctx, cl.Key, cl.Origin)
			return err != nil || (live && allowed)
		}})
}

// GET /widget.js: the script a product's page includes. Not fingerprinted
// (pages name it as is), so cached for five minutes only.
func (h *embedHandlers) script(c echo.Context) error {
	b, err := static.ReadFile("widget.js")
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=300")
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", b)
}

// widgetCSP is the portal's policy with frame-ancestors naming the one
// origin the token is for ('none' when the token says nothing).
func widgetCSP(origin string) string {
	fa := "'none'"
	if origin != "" {
		fa = origin
	}
	return strings.Replace(contentSecurityPolicy, "frame-ancestors 'none'", "frame-ancestors "+fa, 1)
}

var accentRE = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}){1,2}$`)

// page builds the widget's view from a request's token and theming
// parameters (query or form).
func (h *embedHandlers) page(c echo.Context, cl embedClaims, token string) views.Widget {
	a := h.s.cfg.Portal.Assets
	w := views.Widget{Fmt: views.NewFmt(c.Request().Header.Get("Accept-Language"), ""), CSS: a.URL("app.css"), JS: a.URL("embed.js"),
		Token: token, Origin: cl.Origin, Theme: c.FormValue("theme"), ProductName: h.s.cfg.Portal.ProductName,
		Compact: c.FormValue("compact") == "1" || c.FormValue("compact") == "true", Payments: h.s.cfg.Payments.Service != nil}
	if w.Theme != "light" && w.Theme != "dark" {
		w.Theme = "auto"
	}
	if ac := c.FormValue("accent"); accentRE.MatchString(ac) {
		w.Accent = ac
	}
	// The page may be framed by the token's origin only.
	hd := c.Response().Header()
	hd.Set("Content-Security-Policy", widgetCSP(cl.Origin))
	hd.Del("X-Frame-Options")
	return w
}

// widgetAuth checks the token of a widget request; a failure is answered
// by a short page in the frame.
func (h *embedHandlers) widgetAuth(c echo.Context) (embedClaims, views.Widget, error) {
	token := c.FormValue("token")
	cl, err := h.verify(c, token, false)
	w := h.page(c, cl, token)
	if err != nil {
		msg := "Your credit balance cannot be shown here. Reload the page to try again."
		switch billing.ErrorCode(err) {
		case billing.CodeEmbedTokenExpired:
			// The frame asks the host page for a new token and reloads
			// with it; the message stays only if the page gives none.
			msg = "This balance view has expired. Reload the page to see your credits."
			w.Expired = true
		case billing.CodeRateLimited:
			msg = billing.ErrorMessage(err)
		}
		if billing.ErrorCode(err) == billing.CodeInternal || billing.ErrorCode(err) == billing.CodeStorageUnavailable {
			return cl, w, err
		}
		c.Response().Header().Set("X-Tally-Error", billing.ErrorCode(err))
		return cl, w, render(c, Status(err), views.WidgetError(w, msg))
	}
	if c.Request().Method == http.MethodPost && !sameOrigin(c) {
		// The widget's own forms only: the host page holds the token but
		// must not be able to buy credits without the customer's click.
		return cl, w, errCrossSite
	}
	return cl, w, nil
}

// answered reports whether widgetAuth already answered the request.
func answered(c echo.Context) bool { return c.Response().Committed }

// sameOrigin reports whether a POST came from Tally's own pages (the
// widget's frame): Fetch Metadata first, else the Origin header.
func sameOrigin(c echo.Context) bool {
	r := c.Request()
	if sfs := r.Header.Get(echo.HeaderSecFetchSite); sfs != "" {
		return sfs == "same-origin"
	}
	u, err := url.Parse(r.Header.Get("Origin"))
	return err == nil && u.Host == r.Host
}

// GET /embed/widget?token=&theme=&accent=&compact=: the widget's page.
func (h *embedHandlers) widget(c echo.Context) error {
	cl, w, err := h.widgetAuth(c)
	if err != nil || answered(c) {
		return err
	}
	return h.render(c, http.StatusOK, cl, w)
}

// render fills the widget's live block, card and packs, and writes it.
func (h *embedHandlers) render(c echo.Context, status int, cl embedClaims, w views.Widget) error {
	ctx := c.Request().Context()
	var err error
	if w.Live, err = h.live(ctx, cl.Customer, w.Fmt); err != nil {
		return err
	}
	if w.Payments {
		if card, ok, err := h.s.cfg.Payments.Service.DefaultCard(ctx, cl.Customer); err != nil {
			return err
		} else if ok {
			w.Card = &card
		}
		pb, err := h.s.prices.CurrentPriceBook(ctx)
		if err != nil {
			return err
		}
		if pb != nil {
			w.Packs = pb.ActivePacks()
		}
	}
	return render(c, status, views.WidgetPage(w))
}

// POST /embed/top-ups/confirm asks before money moves, as the portal does:
// "Add 1,000 credits for $10.00, charged to Visa •••• 4242?".
func (h *embedHandlers) confirmTopUp(c echo.Context) error {
	cl, w, err := h.widgetAuth(c)
	if err != nil || answered(c) {
		return err
	}
	if !w.Payments {
		return billing.Errorf(billing.CodeNotFound, "Payments are not set up.")
	}
	ctx := c.Request().Context()
	svc := h.s.cfg.Payments.Service
	req := billing.TopUpRequest{PackID: c.FormValue("pack")}
	if req.PackID == "" {
		return billing.Errorf(billing.CodeValidation, "Choose a pack.").With("param", "pack")
	}
	credits, price, _, err := svc.Quote(ctx, req)
	if err != nil {
		return err
	}
	card, ok, err := svc.DefaultCard(ctx, cl.Customer)
	if err != nil {
		return err
	}
	if !ok {
		w.Panel, w.Message = "failed", "Add a card in billing first."
		return h.render(c, http.StatusOK, cl, w)
	}
	w.Panel = "confirm"
	w.Confirm = &views.TopUpConfirm{PackID: req.PackID, Credits: credits, Price: price, Card: card, Key: newClickKey()}
	return h.render(c, http.StatusOK, cl, w)
}

// POST /embed/top-ups charges the saved card once for the confirmed click:
// the portal's payment path (the payment service's TopUp), the customer
// being the actor; the click key makes a double submit charge once.
func (h *embedHandlers) topUp(c echo.Context) error {
	cl, w, err := h.widgetAuth(c)
	if err != nil || answered(c) {
		return err
	}
	if !w.Payments {
		return billing.Errorf(billing.CodeNotFound, "Payments are not set up.")
	}
	req := billing.TopUpRequest{PackID: c.FormValue("pack"), Key: c.FormValue("key"), Origin: billing.OriginPortal}
	if req.PackID == "" || !strings.HasPrefix(req.Key, "click_") {
		return billing.Errorf(billing.CodeInvalidRequest, "This purchase form has expired; start again.")
	}
	req.Key = cl.Customer + ":" + req.Key
	req.ReturnURL = h.s.absURL(c, "/portal/top-ups/return")
	tu, err := h.s.cfg.Payments.Service.TopUp(c.Request().Context(), cl.Customer, req)
	switch {
	case err != nil && billing.ErrorCode(err) == billing.CodeInternal:
		return err
	case err != nil:
		w.Panel, w.Message = "failed", billing.ErrorMessage(err)
	case tu.Status == billing.TopUpSucceeded:
		w.Panel = "done"
		w.Message = fmt.Sprintf("Added %s credits. %s was charged to %s.", w.Fmt.Credits(tu.Credits), w.Fmt.Money(tu.Price),
			views.CardLabel(billing.Card{Brand: tu.CardBrand, Last4: tu.CardLast4}))
	case tu.Status == billing.TopUpFailed:
		// The provider's reason is a sentence of its own ("Your card was
		// declined."); quoting it inside ours repeated it.
		w.Panel, w.Message = "failed", "Your card was declined. Nothing was charged. Open billing to pay with another card."
		if r := strings.TrimSpace(tu.FailureReason); r != "" && !strings.EqualFold(strings.TrimSuffix(r, "."), "Your card was declined") {
			w.Message = strings.TrimSuffix(r, ".") + ". Nothing was charged. Open billing to pay with another card."
		}
	case tu.Status == billing.TopUpRequiresAction:
		w.Panel, w.Message = "failed", "Your bank asks you to confirm this payment. Open billing to finish it."
	default:
		w.Panel, w.Message = "done", "Your payment is being processed; the credits appear here as soon as it completes."
	}
	return h.render(c, http.StatusOK, cl, w)
}

// POST /embed/portal-link opens the portal's focused top-up (in a new
// window: the form's target) with a fresh single-use sign-in link, back to
// the host page's origin afterwards.
func (h *embedHandlers) portalLink(c echo.Context) error {
	cl, _, err := h.widgetAuth(c)
	if err != nil || answered(c) {
		return err
	}
	token, _, err := h.s.portal.CreatePortalSession(c.Request().Context(), cl.Customer, cl.Origin, "top_up", billing.PortalSessionTTL)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, h.s.absURL(c, "/portal/session/"+token))
}
