package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
	"github.com/tally-billing/tally/handlers"
	"github.com/tally-billing/tally/payments"
)

// serveConfig is everything `tally serve` is configured with.
type serveConfig struct {
	Addr          string
	DB            string
	Demo          bool
	LogLevel      string
	LogFormat     string
	LogRequests   bool
	SweepInterval time.Duration
	ReadTimeout   time.Duration
	WriteTimeout  time.Duration
	ShutdownGrace time.Duration
	PprofAddr     string
	MetricsToken  string
	ProductName   string
	BaseURL       string
	SecureCookies bool
	TrustProxy    bool
	MaxStreams    int
	SessionKey    string
	Stripe        payments.StripeConfig
	RefundWindow  time.Duration
	PurchaseTTL   time.Duration
	RefillPoll    time.Duration
	Notify        notifyConfig
	Policy        policyConfig // the policy's other defaults (policy.go)
}

const serveUsage = `Usage: tally serve [flags]

Serves the metering API (/api/v1) and the customer portal. Applies pending
database migrations first. With --demo it seeds a demo price book, three
customers with 90 days of usage and a demo API key (once; later runs reuse
them). SIGINT or SIGTERM drains in-flight requests and closes the database.

Without --demo, a database that still holds the demo's published key or
staff accounts is served with a warning on a loopback address and refused
(exit 1) on any other.`

func cmdServe(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := newFlags("serve", serveUsage, stderr)
	cfg := serveConfig{}
	fs.StringVar(&cfg.Addr, "addr", envOr(getenv, "TALLY_ADDR", "127.0.0.1:8080"), "address to listen on (env TALLY_ADDR)")
	dbPath := dbFlag(fs, getenv)
	fs.BoolVar(&cfg.Demo, "demo", envBool(getenv, "TALLY_DEMO", false), "seed demo data and print a demo API key (env TALLY_DEMO)")
	fs.StringVar(&cfg.LogLevel, "log-level", envOr(getenv, "TALLY_LOG_LEVEL", "info"), "debug, info, warn or error (env TALLY_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", envOr(getenv, "TALLY_LOG_FORMAT", "text"), "text or json (env TALLY_LOG_FORMAT)")
	fs.BoolVar(&cfg.LogRequests, "log-requests", envBool(getenv, "TALLY_LOG_REQUESTS", true), "log one line per request (env TALLY_LOG_REQUESTS)")
	fs.DurationVar(&cfg.SweepInterval, "sweep-interval", envDuration(getenv, "TALLY_SWEEP_INTERVAL", 10*time.Second), "how often expired lots and holds are written off (env TALLY_SWEEP_INTERVAL)")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", envDuration(getenv, "TALLY_READ_TIMEOUT", 10*time.Second), "cut clients that take longer to send a request (env TALLY_READ_TIMEOUT)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", envDuration(getenv, "TALLY_WRITE_TIMEOUT", 30*time.Second), "cut responses that take longer to write (env TALLY_WRITE_TIMEOUT)")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", envDuration(getenv, "TALLY_SHUTDOWN_GRACE", 20*time.Second), "how long SIGTERM waits for in-flight requests (env TALLY_SHUTDOWN_GRACE)")
	fs.StringVar(&cfg.ProductName, "product-name", envOr(getenv, "TALLY_PRODUCT_NAME", ""), "your product's name, for \"Back to <name>\" in the portal (env TALLY_PRODUCT_NAME; demo: Pixel AI)")
	fs.StringVar(&cfg.BaseURL, "base-url", envOr(getenv, "TALLY_BASE_URL", ""), "public URL of Tally, for portal sign-in links and payment return URLs (env TALLY_BASE_URL; default http://<addr>, with 127.0.0.1 for a wildcard address such as 0.0.0.0)")
	fs.BoolVar(&cfg.SecureCookies, "secure-cookies", envBool(getenv, "TALLY_SECURE_COOKIES", false), "mark cookies Secure; set when Tally is served over TLS (env TALLY_SECURE_COOKIES)")
	fs.BoolVar(&cfg.TrustProxy, "trust-proxy", envBool(getenv, "TALLY_TRUST_PROXY", false), "Tally runs behind a reverse proxy: take the client's address from X-Forwarded-For set by a private, loopback or link-local peer (env TALLY_TRUST_PROXY)")
	fs.IntVar(&cfg.MaxStreams, "max-streams", envInt(getenv, "TALLY_MAX_STREAMS", 1000), "most live balance streams open at once, in all; each portal session may hold 4 (env TALLY_MAX_STREAMS)")
	fs.StringVar(&cfg.SessionKey, "session-key", envOr(getenv, "TALLY_SESSION_KEY", ""), "128 hex characters that sign and encrypt portal cookies; default: generated once and kept in the database (env TALLY_SESSION_KEY)")
	cfg.Stripe = payments.StripeConfig{SecretKey: getenv("TALLY_STRIPE_SECRET_KEY"), WebhookSecret: getenv("TALLY_STRIPE_WEBHOOK_SECRET")}
	fs.StringVar(&cfg.Stripe.APIBase, "stripe-api-base", envOr(getenv, "TALLY_STRIPE_API_BASE", ""), "Stripe API base URL, e.g. a stripe-mock (env TALLY_STRIPE_API_BASE); keys only from TALLY_STRIPE_SECRET_KEY and TALLY_STRIPE_WEBHOOK_SECRET")
	fs.DurationVar(&cfg.RefundWindow, "refund-window", envDuration(getenv, "TALLY_REFUND_WINDOW", 30*24*time.Hour), "how long purchased credits stay refundable (env TALLY_REFUND_WINDOW)")
	fs.DurationVar(&cfg.PurchaseTTL, "purchase-expiry", envDuration(getenv, "TALLY_PURCHASE_EXPIRY", 0), "purchased credits expire this long after purchase; 0 = never (env TALLY_PURCHASE_EXPIRY)")
	fs.DurationVar(&cfg.RefillPoll, "refill-poll", envDuration(getenv, "TALLY_REFILL_POLL", 5*time.Second), "how often auto-refill looks for due jobs besides its wake-ups (env TALLY_REFILL_POLL)")
	fs.StringVar(&cfg.MetricsToken, "metrics-token", envOr(getenv, "TALLY_METRICS_TOKEN", ""), "require 'Authorization: Bearer <token>' on /metrics; open when empty (env TALLY_METRICS_TOKEN)")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", envOr(getenv, "TALLY_PPROF_ADDR", ""), "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off when empty (env TALLY_PPROF_ADDR)")
	notifyFlags(fs, getenv, &cfg.Notify)
	policyFlags(fs, getenv, &cfg.Policy)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", fs.Args())}
	}
	if err := validNotify(cfg.Notify); err != nil {
		return err
	}
	if cfg.MaxStreams < 1 {
		return usageError{fmt.Sprintf("--max-streams must be at least 1, got %d", cfg.MaxStreams)}
	}
	cfg.DB = *dbPath
	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	return serve(ctx, cfg, ln, log, stdout)
}

// serve runs Tally on ln until ctx is cancelled. Tests call it with port 0.
func serve(ctx context.Context, cfg serveConfig, ln net.Listener, log *slog.Logger, stdout io.Writer) error {
	defer ln.Close()
	d, err := db.Open(ctx, cfg.DB, db.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := d.Close(); err != nil {
			log.Error("closing the database", "err", err)
		}
	}()
	base, wildcard := linkBase(ln.Addr())
	if wildcard && cfg.BaseURL == "" {
		log.Warn("listening on every interface without --base-url: portal sign-in links and payment return URLs point at "+base+
			", which only this machine can reach; set --base-url (env TALLY_BASE_URL) to Tally's public URL, e.g. https://billing.example.com",
			"addr", ln.Addr().String(), "links", base)
	}
	if !cfg.Demo {
		if err := checkDemoCredentials(ctx, d, ln.Addr(), log); err != nil {
			return err
		}
	}
	if cfg.Demo {
		key, err := seedDemo(ctx, d, stdout, cfg.Stripe.SecretKey == "")
		if err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
		printDemoWelcome(stdout, base, key)
		if err := seedDemoAdmins(ctx, d, stdout, base); err != nil {
			return fmt.Errorf("demo admins: %w", err)
		}
	}
	if pb, err := d.CurrentPriceBook(ctx); err != nil {
		return err
	} else if pb == nil {
		log.Warn("no price book is in effect: every usage call will be refused (unknown_feature) until one is published; publish one with: tally pricebook publish --file prices.json (or POST /api/v1/price-books)")
	}

	var draining atomic.Bool
	portal := handlers.PortalConfig{ProductName: cfg.ProductName, BaseURL: cfg.BaseURL, Demo: cfg.Demo, SecureCookies: cfg.SecureCookies,
		MaxStreams: cfg.MaxStreams}
	if portal.ProductName == "" && cfg.Demo {
		portal.ProductName = "Pixel AI"
	}
	if cfg.Demo {
		for _, dc := range demoCustomers() {
			portal.DemoCustomers = append(portal.DemoCustomers, dc.in.ExternalID)
		}
	}
	if portal.BaseURL == "" {
		portal.BaseURL = base
	}
	if cfg.SessionKey != "" {
		k, err := hex.DecodeString(cfg.SessionKey)
		if err != nil || len(k) != 64 {
			return fmt.Errorf("--session-key must be 128 hex characters (64 random bytes), e.g. from: openssl rand -hex 64")
		}
		portal.SessionKeys = [][]byte{k[:32], k[32:]}
	}
	provider, payMode, err := newProvider(cfg, portal.BaseURL)
	if err != nil {
		return err
	}
	policy := initialPolicy(cfg).Payment()
	policies, err := startPolicy(ctx, d, cfg, log)
	if err != nil {
		return err
	}
	metrics := handlers.NewMetrics()
	pay := &payments.Service{Provider: provider, Store: d, Policy: policy, Policies: policies, Log: log,
		OnRefill:  func(result string) { metrics.RefillJobs.WithLabelValues(result).Inc() },
		ReturnURL: strings.TrimRight(portal.BaseURL, "/") + "/portal/top-ups/return"}
	if sb, ok := provider.(*payments.SandboxProvider); ok {
		sb.Recall = func(ctx context.Context, paymentID string) (billing.Money, bool) {
			tu, err := d.FindTopUpByPayment(ctx, paymentID)
			return tu.Price, err == nil && (tu.Status == billing.TopUpSucceeded || tu.Status == billing.TopUpRefunded)
		}
	}
	d.SetBatchObserver(metrics.ObserveBatch)
	mailer, mailMode, err := newMailer(cfg.Notify)
	if err != nil {
		return err
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	hooks, hooksDone := startWebhooks(sweepCtx, d, cfg.Notify, mailer, log)
	mailDone := startMail(sweepCtx, d, mailer, portal.BaseURL, portal.ProductName, log)
	h := handlers.New(handlers.Config{Webhooks: webhooksConfig(d, cfg.Notify, hooks), Notifications: handlers.NotificationsConfig{Store: d, Mail: mailer != nil},
		Logger: log, Version: version, LogRequests: cfg.LogRequests, Metrics: metrics, MetricsToken: cfg.MetricsToken, Portal: portal, TrustProxy: cfg.TrustProxy,
		Payments: handlers.PaymentsConfig{Service: pay, Store: d, Provider: provider, Policy: policy}}, d)
	h.SetDraining(draining.Load)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(5*time.Second, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		sweep(sweepCtx, d, cfg.SweepInterval, log, cfg.Stripe.SecretKey == "")
	}()
	refillDone := make(chan struct{})
	go func() {
		defer close(refillDone)
		pay.RunRefills(sweepCtx, cfg.RefillPoll)
	}()
	// The outbox brings other processes' changes (the CLI, another
	// instance) to the open pages' live balance.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if err := d.WatchEvents(sweepCtx); err != nil {
			log.Warn("outbox watch stopped", "err", err)
		}
	}()

	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("tally listening", "url", base, "addr", ln.Addr().String(), "db", dbName(cfg.DB), "payments", payMode,
		"demo", cfg.Demo, "mail", mailMode, "version", version)

	select {
	case err := <-errc:
		stopSweep()
		<-sweepDone
		<-refillDone
		<-watchDone
		<-hooksDone
		<-mailDone
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "grace", cfg.ShutdownGrace)
	draining.Store(true)
	h.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	stopSweep()
	<-sweepDone
	<-refillDone
	<-watchDone
	<-hooksDone
	<-mailDone
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("stopped; closing the database")
	return nil
}

// checkDemoCredentials looks, when serving without --demo, for the demo's
// published credentials (the demo API key, the demo staff accounts with
// their demo passwords), left by an earlier `serve --demo` on this
// database: anyone who has read the README can use them. On a loopback
// address it warns and says how to remove them; on any other address it
// refuses to serve.
func checkDemoCredentials(ctx context.Context, d *db.DB, addr net.Addr, log *slog.Logger) error {
	var found, fix []string
	keys, err := d.FindAPIKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		// Only the demo key's prefix has a '_' after "tsk_": random secrets are base32.
		if k.Prefix != "" && strings.HasPrefix(demoAPIKey, k.Prefix) && k.RevokedAt == nil {
			found = append(found, "the demo API key "+k.ID)
			fix = append(fix, "tally apikey revoke "+k.ID)
		}
	}
	admins, err := d.FindAdmins(ctx)
	if err != nil {
		return err
	}
	var staff []string
	for _, a := range admins {
		for _, demo := range [][2]string{{demoOwnerEmail, demoOwnerPassword}, {demoSupportEmail, demoSupportPassword}} {
			if a.Email == demo[0] {
				if _, err := d.AuthenticateAdmin(ctx, demo[0], demo[1]); err == nil {
					staff = append(staff, demo[0])
				}
			}
		}
	}
	if len(staff) > 0 {
		found = append(found, "the demo admin console accounts "+strings.Join(staff, ", "))
		fix = append(fix, "serve a database that was never seeded with --demo (staff accounts cannot be removed)")
	}
	if len(found) == 0 {
		return nil
	}
	what := strings.Join(found, " and ")
	how := strings.Join(fix, "; ")
	if !isLoopback(addr) {
		return fmt.Errorf("refusing to serve on %s without --demo: this database holds the published demo credentials (%s), which anyone can use; remove them (%s), or serve on a loopback address, or pass --demo to try Tally on purpose",
			addr, what, how)
	}
	log.Warn("this database holds the published demo credentials, which anyone who has read the README can use; serving on a loopback address only. Remove them before serving for real",
		"credentials", what, "remove", how)
	return nil
}

// dbName is how the log names the database: a SQLite file by its absolute
// path, a PostgreSQL URL without its password.
func dbName(dsn string) string {
	if db.IsPostgresDSN(dsn) {
		return db.Redact(dsn)
	}
	abs, err := filepath.Abs(strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		return dsn
	}
	return abs
}

// isLoopback reports whether a listener's address is a loopback one
// (127.0.0.0/8, ::1), reachable from this machine only.
func isLoopback(addr net.Addr) bool {
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// linkBase is the http:// URL of a listener, for links when --base-url is
// not set. A wildcard address (0.0.0.0, [::], :PORT) is no host a browser
// can open: its links use 127.0.0.1, which the wildcard also serves, and
// wildcard reports it.
func linkBase(addr net.Addr) (base string, wildcard bool) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String(), false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "http://" + net.JoinHostPort("127.0.0.1", port), true
	}
	return "http://" + addr.String(), false
}

// sweep writes off expired lots and holds every interval, and deletes the
// portal sessions past their maximum age.
func sweep(ctx context.Context, d *db.DB, every time.Duration, log *slog.Logger, sandbox bool) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if sandbox {
				// Sandbox subscriptions renew when their period ends, as
				// Stripe's would (the test clock may move them sooner).
				if res, err := d.AdvanceSandbox(ctx, 0); err != nil && ctx.Err() == nil {
					log.Warn("sandbox renewals failed", "err", err)
				} else if res.Renewed+res.Canceled > 0 {
					log.Info("sandbox renewals", "renewed", res.Renewed, "ended", res.Canceled)
				}
			}
			n, err := d.ExpireDue(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("expiry sweep failed", "err", err)
			} else if n > 0 {
				log.Info("expiry sweep", "customers", n)
			}
			// Session times are the wall clock's (the portal's), not the ledger's.
			if _, err := d.SweepCustomerSessions(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("portal session sweep failed", "err", err)
			}
			if _, err := d.SweepAdminSessions(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("admin session sweep failed", "err", err)
			}
		}
	}
}

// servePprof serves the profiler on its own address, never on the public one.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	log.Info("profiler listening", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("profiler", "err", err)
	}
}

// newProvider picks the payment provider: Stripe when a secret key is set,
// otherwise the offline sandbox (Stripe's test cards, no real money).
func newProvider(cfg serveConfig, baseURL string) (billing.PaymentProvider, string, error) {
	if cfg.Stripe.SecretKey == "" {
		return payments.NewSandbox(baseURL), "sandbox (no real money: set TALLY_STRIPE_SECRET_KEY for Stripe)", nil
	}
	p, err := payments.NewStripe(cfg.Stripe)
	if err != nil {
		return nil, "", err
	}
	mode := "stripe live"
	switch {
	case strings.HasPrefix(cfg.Stripe.SecretKey, "sk_test_") || strings.HasPrefix(cfg.Stripe.SecretKey, "rk_test_"):
		mode = "stripe test mode"
	case cfg.Stripe.APIBase != "":
		mode = "stripe at " + cfg.Stripe.APIBase
	}
	return p, mode, nil
}
