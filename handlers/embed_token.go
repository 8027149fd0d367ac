package handlers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/tally-billing/tally/billing"
)

// embedTokenPrefix starts every embed token (and versions its format).
const embedTokenPrefix = "tet1."

// embedClaims is what an embed token says: the key that minted it, the
// customer whose balance it shows, the one origin whose pages may use it,
// when it ends, and a random id (which keys its stream cap).
type embedClaims struct {
	Key      string `json:"k"`
	Customer string `json:"c"`
	Origin   string `json:"o"`
	Expires  int64  `json:"x"` // unix seconds
	ID       string `json:"n"`
}

// embedTokens signs and checks embed tokens: HMAC-SHA256 over the claims
// under a server secret kept in the database (app_secrets "embed_token_key",
// made on first use), so every process serving the database agrees and no
// key is ever written in the code.
type embedTokens struct{ key []byte }

// mint signs claims for customer and origin, ending ttl after now.
func (et embedTokens) mint(keyID, customer, origin string, now time.Time, ttl time.Duration) (string, time.Time) {
	n := make([]byte, 9)
	rand.Read(n)
	exp := now.Add(ttl).Truncate(time.Second)
	payload, _ := json.Marshal(embedClaims{Key: keyID, Customer: customer, Origin: origin, Expires: exp.Unix(), ID: hex.EncodeToString(n)})
	body := base64.RawURLEncoding.EncodeToString(payload)
	return embedTokenPrefix + body + "." + et.sign(body), exp
}

func (et embedTokens) sign(body string) string {
	mac := hmac.New(sha256.New, et.key)
	mac.Write([]byte("tally embed token\x00"))
	mac.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// parse checks a token's signature and expiry. Errors: embed_token_invalid
// (missing, malformed, forged; no claims), embed_token_expired (with the
// claims).
func (et embedTokens) parse(token string, now time.Time) (embedClaims, error) {
	invalid := billing.Errorf(billing.CodeEmbedTokenInvalid,
		"The embed token is missing, malformed or was not issued by this server. Mint one with POST /api/v1/embed-tokens.")
	rest, ok := strings.CutPrefix(token, embedTokenPrefix)
	if !ok || len(token) > 1000 {
		return embedClaims{}, invalid
	}
	body, sig, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(et.sign(body))) {
		return embedClaims{}, invalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return embedClaims{}, invalid
	}
	var cl embedClaims
	if err := json.Unmarshal(raw, &cl); err != nil || cl.Key == "" || cl.Customer == "" || cl.Origin == "" {
		return embedClaims{}, invalid
	}
	if now.Unix() >= cl.Expires {
		// The claims come back with the error (they are genuine): the
		// answer is for the token's origin (CORS, framing), so the page
		// can read that it must refresh.
		return cl, billing.Errorf(billing.CodeEmbedTokenExpired,
			"The embed token expired at %s. Mint a new one (the widget asks your page's onTokenExpiring callback before it ends).",
			time.Unix(cl.Expires, 0).UTC().Format(time.RFC3339)).With("expired_at", time.Unix(cl.Expires, 0).UTC())
	}
	return cl, nil
}
