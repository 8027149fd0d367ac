package handlers

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// Metrics are Tally's Prometheus metrics, served at /metrics.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	debits     prometheus.Counter
	credits    prometheus.Counter
	rejections *prometheus.CounterVec
	batchSize  prometheus.Histogram
	commit     prometheus.Histogram
	commitErrs prometheus.Counter
	reruns     prometheus.Counter
	// RefillJobs counts auto-refill jobs by result (payments).
	RefillJobs *prometheus.CounterVec
	// WebhookDeliveries counts webhook deliveries by direction and result.
	WebhookDeliveries *prometheus.CounterVec
}

// NewMetrics registers Tally's metrics (and Go's process metrics) in a
// registry of their own.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_http_requests_total",
			Help: "HTTP requests by route and status."}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tally_http_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}},
			[]string{"method", "route"}),
		debits: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_debits_total",
			Help: "Usage debits written (not counting idempotent replays)."}),
		credits: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_debited_credits_total",
			Help: "Credits charged by usage debits."}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_rejections_total",
			Help: "Refused API requests by error type."}, []string{"type"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tally_writer_batch_size",
			Help: "Operations per group commit.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tally_writer_commit_seconds",
			Help: "Time to run and durably commit one batch.", Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}}),
		commitErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_writer_commit_errors_total",
			Help: "Batches that failed to commit (storage faults)."}),
		reruns: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_writer_reruns_total",
			Help: "Batches run a second time, each operation in its own savepoint, because a deferred row was refused (most often a retried idempotency key)."}),
		RefillJobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_refill_jobs_total",
			Help: "Auto-refill jobs by result."}, []string{"result"}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_webhook_deliveries_total",
			Help: "Webhook deliveries by direction (in, out) and result."}, []string{"direction", "result"}),
	}
	reg.MustRegister(m.requests, m.latency, m.debits, m.credits, m.rejections, m.batchSize, m.commit, m.commitErrs,
		m.reruns, m.RefillJobs, m.WebhookDeliveries)
	return m
}

// ObserveBatch records one group commit (db.BatchObserver).
func (m *Metrics) ObserveBatch(b db.BatchStats) {
	m.batchSize.Observe(float64(b.Size))
	m.commit.Observe(b.Duration.Seconds())
	if b.Err != nil {
		m.commitErrs.Inc()
	}
	if b.Rerun {
		m.reruns.Inc()
	}
}

func (m *Metrics) debited(d billing.Debit) {
	if !d.Replayed {
		m.debits.Inc()
		m.credits.Add(float64(d.CreditsCharged) / billing.Milli)
	}
}

func (m *Metrics) rejected(err error) {
	m.rejections.WithLabelValues(billing.ErrorCode(err)).Inc()
}

// middleware counts requests and their latency by route (the route pattern,
// never the raw path, so ids do not explode the label space).
func (m *Metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		status := c.Response().Status
		if err != nil {
			derr := asDomainError(err)
			status = Status(derr)
			m.rejected(derr)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request().Method
		m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
		m.latency.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		return err
	}
}

func (m *Metrics) handler() echo.HandlerFunc {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return echo.WrapHandler(h)
}
