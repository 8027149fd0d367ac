package handlers

import (
	"math"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"golang.org/x/time/rate"
)

const ctxAPIKey = "tally.api_key"

// apiKey returns the key that authenticated the request.
func apiKey(c echo.Context) *billing.APIKey {
	k, _ := c.Get(ctxAPIKey).(*billing.APIKey)
	return k
}

// rateLimiters holds one token bucket per API key that has a rate limit.
type rateLimiters struct {
	mu sync.Mutex
	m  map[string]*keyLimiter
}

type keyLimiter struct {
	rps int
	l   *rate.Limiter
}

// allow takes a token from the key's bucket (burst = one second's worth).
// It returns how long to wait when the bucket is empty.
func (r *rateLimiters) allow(k *billing.APIKey, now time.Time) (bool, time.Duration) {
	if k.RateLimit <= 0 {
		return true, 0
	}
	r.mu.Lock()
	kl := r.m[k.ID]
	if kl == nil || kl.rps != k.RateLimit {
		kl = &keyLimiter{rps: k.RateLimit, l: rate.NewLimiter(rate.Limit(k.RateLimit), k.RateLimit)}
		if r.m == nil {
			r.m = map[string]*keyLimiter{}
		}
		r.m[k.ID] = kl
	}
	r.mu.Unlock()
	res := kl.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// requireKey authenticates the Bearer API key, checks its scope and its
// request-rate limit.
func (s *Server) requireKey(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		next = strictQuery(next) // a caller the key admits learns of its query's mistakes
		return func(c echo.Context) error {
			secret, ok := bearer(c.Request().Header.Get("Authorization"))
			if !ok {
				return billing.Errorf(billing.CodeUnauthorized, "Send your API key as 'Authorization: Bearer tsk_...'.")
			}
			k, err := s.keys.Authenticate(c.Request().Context(), strings.TrimSpace(secret))
			if billing.ErrorCode(err) == billing.CodeUnauthorized {
				return s.authFailed(c, err)
			}
			if err != nil {
				return err
			}
			if !billing.Allows(k.Scope, scope) {
				return billing.Errorf(billing.CodeForbidden, "This API key has scope %q; this endpoint needs %q.", k.Scope, scope)
			}
			if ok, wait := s.limiters.allow(k, time.Now()); !ok {
				secs := int(math.Ceil(wait.Seconds()))
				return billing.Errorf(billing.CodeRateLimited, "Too many requests for this API key (limit %d per second). Retry after %d s.",
					k.RateLimit, secs).With("retry_after", secs)
			}
			c.Set(ctxAPIKey, k)
			return next(c)
		}
	}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header;
// the scheme name is case-insensitive (RFC 9110, section 11.1).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}
