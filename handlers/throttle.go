package handlers

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"golang.org/x/time/rate"
)

// Failed authentications (an unknown or revoked API key, a made-up sign-in
// link, a demo sign-in as nobody) are throttled per client address:
// authFailBurst of them at once, then one more every authFailEvery. Past
// that the address gets 429 rate_limited instead of the usual answer.
// Successes never count and are never refused: a valid key or link from a
// throttled address (an office behind one NAT, an app server with one
// misconfigured worker) still works. Keys and links are long random
// secrets, so the throttle is not what stops guessing; it stops a flood of
// wrong answers from costing a lookup and a log line each at full speed,
// and tells a misconfigured client to back off.
const (
	authFailBurst = 10
	authFailEvery = 6 * time.Second
	// authFailAddrs bounds the addresses remembered. An address whose bucket
	// is full again has nothing to remember and is dropped first.
	authFailAddrs = 10_000
)

// failThrottle is one token bucket per client address for failed
// authentications, in a map of bounded size.
type failThrottle struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
	// burst and every replace authFailBurst and authFailEvery when set
	// (the admin console's per-account throttle is stricter).
	burst int
	every time.Duration
}

func (f *failThrottle) limits() (int, time.Duration) {
	if f.burst > 0 {
		return f.burst, f.every
	}
	return authFailBurst, authFailEvery
}

// blocked reports, without counting anything, whether key has no failure
// left at now, and how long until it has one.
func (f *failThrottle) blocked(key string, now time.Time) (bool, time.Duration) {
	f.mu.Lock()
	l := f.m[key]
	f.mu.Unlock()
	if l == nil || l.TokensAt(now) >= 1 {
		return false, 0
	}
	_, every := f.limits()
	return true, time.Duration((1 - l.TokensAt(now)) * float64(every))
}

// fail records a failed authentication from addr at now. It reports false,
// with how long to wait, when the address has failed too often.
func (f *failThrottle) fail(addr string, now time.Time) (bool, time.Duration) {
	f.mu.Lock()
	l := f.m[addr]
	if l == nil {
		if f.m == nil {
			f.m = map[string]*rate.Limiter{}
		}
		if len(f.m) >= authFailAddrs {
			f.evict(now)
		}
		burst, every := f.limits()
		l = rate.NewLimiter(rate.Every(every), burst)
		f.m[addr] = l
	}
	f.mu.Unlock()
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict makes room: first every address whose bucket has refilled (it
// would behave exactly like a new one), then, if the map is still full (a
// flood from many addresses at once), down to nine tenths at random (Go's
// map order), so the scan is paid once per thousand new addresses.
func (f *failThrottle) evict(now time.Time) {
	for k, l := range f.m {
		if burst, _ := f.limits(); l.TokensAt(now) >= float64(burst) {
			delete(f.m, k)
		}
	}
	for k := range f.m {
		if len(f.m) < authFailAddrs*9/10 {
			break
		}
		delete(f.m, k)
	}
}

// clientKey is the throttle's key for a request's address: the address
// itself for IPv4, its /64 network for IPv6 (one host usually holds a whole
// /64, and could otherwise take a fresh address per attempt).
func clientKey(c echo.Context) string {
	ip := c.RealIP()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// authFailed counts a failed authentication of the request's address and
// returns err, or a 429 rate_limited error (with Retry-After) when the
// address has failed too often.
func (s *Server) authFailed(c echo.Context, err error) error {
	ok, wait := s.failures.fail(clientKey(c), time.Now())
	if ok {
		return err
	}
	secs := int(math.Ceil(wait.Seconds()))
	return billing.Errorf(billing.CodeRateLimited, "Too many failed sign-in or API key attempts from your address. Retry after %d s.", secs).
		With("retry_after", secs)
}

// ipExtractor picks how c.RealIP() finds the client: the connection's peer
// address, unless Tally runs behind a reverse proxy, whose X-Forwarded-For
// is then believed when the request comes from a private, loopback or
// link-local address (Echo's default trust). Believing X-Forwarded-For
// from anyone would let a client choose its own address, and so its own
// throttle bucket.
func ipExtractor(trustProxy bool) echo.IPExtractor {
	if trustProxy {
		return echo.ExtractIPFromXFFHeader()
	}
	return echo.ExtractIPDirect()
}
