// Package handlers is Tally's HTTP layer: Echo routes, one file per
// resource, middleware (API keys, body limits, request logs) and the one
// error handler. Handlers bind, validate, call the domain and render; they
// hold no billing rules.
package handlers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/tally-billing/tally/billing"
)

// Store is everything the handlers need from storage; *db.DB implements it.
type Store interface {
	billing.Ledger
	billing.PriceBooks
	billing.APIKeys
	billing.Portal
	AdminStore
	Ping(ctx context.Context) error
	Now() time.Time
}

// Config holds the HTTP layer's settings.
type Config struct {
	Logger       *slog.Logger
	Version      string
	LogRequests  bool     // one structured log line per request
	Metrics      *Metrics // nil: a registry of the server's own
	MetricsToken string   // when set, /metrics wants "Authorization: Bearer <token>"
	Portal       PortalConfig
	Payments     PaymentsConfig // Service nil: no payments (top-ups and cards hidden)

	// Outbound webhooks and customer notifications (issue 13).
	Webhooks      WebhooksConfig      // Store nil: no webhook endpoints API
	Notifications NotificationsConfig // Store nil: no notifications page or e-mail choices

	Admin AdminConfig // the admin console (/admin)
	// TrustProxy believes X-Forwarded-For from private, loopback and
	// link-local peers (set it when Tally runs behind a reverse proxy);
	// otherwise a client's address is the connection's. It keys the
	// throttle of failed authentications and the request log's remote_ip.
	TrustProxy bool
}

// Server is Tally's HTTP handler.
type Server struct {
	e        *echo.Echo
	store    Store
	ledger   billing.Ledger
	prices   billing.PriceBooks
	keys     billing.APIKeys
	log      *slog.Logger
	cfg      Config
	limiters rateLimiters
	failures failThrottle // failed authentications per client address
	streams  streamSet    // open live balance streams
	csrfKey  []byte       // signs the CSRF tokens of signed-in sessions
	draining func() bool
	metrics  *Metrics
	portal   billing.Portal
	sessions *sessions.CookieStore
	quit     chan struct{} // closed when the server drains: ends event streams
	admin    adminState    // the admin console's sign-in throttle
}

// New builds the routes.
func New(cfg Config, store Store) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = ipExtractor(cfg.TrustProxy)
	s := &Server{e: e, store: store, ledger: store, prices: store, keys: store, log: cfg.Logger, cfg: cfg,
		draining: func() bool { return false }, metrics: cfg.Metrics, portal: store, quit: make(chan struct{})}
	if err := s.setupPortal(context.Background()); err != nil {
		// Without stored keys, sessions still work until the next restart.
		cfg.Logger.Warn("portal session keys not stored; sessions end at restart", "err", err)
		k := make([]byte, 64)
		rand.Read(k)
		s.cfg.Portal.SessionKeys = [][]byte{k[:32], k[32:]}
		s.setupPortal(context.Background())
	}
	e.HTTPErrorHandler = errorHandler(cfg.Logger, s.pageError)
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Generator: func() string { return newRequestID() },
	}))
	e.Use(securityHeaders())
	if cfg.LogRequests {
		e.Use(s.requestLogger())
	}
	e.Use(s.metrics.middleware)
	e.Use(s.recoverer)
	e.Use(limitBody)
	s.routes()
	return s
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.e.ServeHTTP(w, r) }

// Echo exposes the router (for tests that list routes, and for other issues'
// handlers to mount on).
func (s *Server) Echo() *echo.Echo { return s.e }

// SetDraining tells /readyz whether the server is shutting down.
func (s *Server) SetDraining(f func() bool) { s.draining = f }

// Drain ends long-lived responses (event streams) so a graceful shutdown
// does not wait for them.
func (s *Server) Drain() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
}

func (s *Server) routes() {
	e := s.e
	healthz := func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") }
	e.GET("/healthz", healthz)
	e.HEAD("/healthz", healthz)
	e.GET("/readyz", s.readyz)
	e.HEAD("/readyz", s.readyz)
	e.GET("/metrics", s.metrics.handler(), s.metricsAuth)

	api := e.Group("/api/v1")
	api.GET("/openapi.json", s.openAPI)

	read := s.requireKey(billing.ScopeRead)
	meter := s.requireKey(billing.ScopeMetering)
	admin := s.requireKey(billing.ScopeAdmin)

	api.POST("/customers", s.createCustomer, meter)
	api.GET("/customers", s.listCustomers, read)
	api.GET("/customers/:id", s.getCustomer, read)
	api.PATCH("/customers/:id", s.updateCustomer, meter)
	api.GET("/customers/:id/balance", s.getBalance, read)
	api.GET("/customers/:id/usage", s.listUsage, read)
	api.GET("/customers/:id/ledger", s.listLedger, read)
	api.PUT("/customers/:id/limits", s.putLimits, admin)

	api.POST("/grants", s.createGrant, admin)
	api.POST("/adjustments", s.createAdjustment, admin)

	api.POST("/usage", s.createUsage, meter)
	api.POST("/usage/batch", s.createUsageBatch, meter)
	api.GET("/quote", s.quote, read)

	api.POST("/holds", s.createHold, meter)
	api.GET("/holds/:id", s.getHold, read)
	api.POST("/holds/:id/capture", s.captureHold, meter)
	api.POST("/holds/:id/release", s.releaseHold, meter)

	api.GET("/price-book", s.getPriceBook, read)
	api.GET("/price-books", s.listPriceBooks, read)
	api.GET("/price-books/:version", s.getPriceBookVersion, read)
	api.POST("/price-books", s.publishPriceBook, admin)

	api.POST("/portal-sessions", s.createPortalSession, s.requireKey(billing.ScopePortal))
	s.portalRoutes()
	s.paymentRoutes()
	s.webhookRoutes()
	s.registerEmbed()
	s.registerPlans() // portal_plan.go
	s.registerAdmin()
}

func (s *Server) readyz(c echo.Context) error {
	if s.draining() {
		return billing.Errorf(billing.CodeUnavailable, "Shutting down.")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return billing.Errorf(billing.CodeStorageUnavailable, "The database does not answer.")
	}
	return c.String(http.StatusOK, "ready\n")
}

// recoverer turns a panic in a handler into an internal error (logged with
// its stack by the error handler) instead of a dropped connection.
func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = &panicError{v: r}
			}
		}()
		return next(c)
	}
}

type panicError struct{ v any }

func (p *panicError) Error() string { return "panic: " + toString(p.v) }

func (s *Server) requestLogger() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogMethod: true, LogURIPath: true, LogLatency: true, LogRequestID: true, LogRemoteIP: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelInfo
			if v.Status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", v.Method), slog.String("path", v.URIPath), slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency), slog.String("request_id", v.RequestID), slog.String("remote_ip", v.RemoteIP),
			}
			if k := apiKey(c); k != nil {
				attrs = append(attrs, slog.String("api_key", k.ID))
			}
			s.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
			return nil
		},
	})
}

// metricsAuth guards /metrics with a bearer token when one is configured.
func (s *Server) metricsAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.MetricsToken == "" {
			return next(c)
		}
		got, _ := bearer(c.Request().Header.Get("Authorization"))
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.MetricsToken)) != 1 {
			return billing.Errorf(billing.CodeUnauthorized, "/metrics needs 'Authorization: Bearer <metrics token>'.")
		}
		return next(c)
	}
}
