package billing

import (
	"net/url"
	"strings"
	"time"
)

// EmbedTokenTTL is how long an embed token (the balance widget's) works:
// short, because it travels through a product's page, and refreshed by the
// page's own callback before it ends.
const EmbedTokenTTL = 15 * time.Minute

// Error codes of the embed tokens (the balance widget and the embed API).
// Each says what the integrating developer must fix.
const (
	CodeEmbedTokenInvalid  = "embed_token_invalid"  // missing, malformed or not signed by this server (401)
	CodeEmbedTokenExpired  = "embed_token_expired"  // past its expires_at: mint a new one (401)
	CodeEmbedTokenRevoked  = "embed_token_revoked"  // the key that minted it is revoked or no longer lists the origin (401)
	CodeEmbedWrongCustomer = "embed_wrong_customer" // the token is another customer's (403)
	CodeEmbedWrongOrigin   = "embed_wrong_origin"   // the request comes from another origin than the token's (403)
	CodeOriginNotAllowed   = "origin_not_allowed"   // the API key does not list the origin (403)
)

// ParseOrigin checks and normalises a web origin: scheme://host[:port],
// http or https, no path, query, fragment or credentials; the scheme and
// host lower-cased and a default port dropped, as browsers send it in the
// Origin header. Errors: validation_failed.
func ParseOrigin(raw string) (string, error) {
	bad := func(why string) (string, error) {
		return "", Errorf(CodeValidation, "%q is not an origin (%s): write scheme://host[:port], such as https://app.example.com", raw, why).With("param", "allowed_origin")
	}
	if raw == "" || len(raw) > 300 {
		return bad("empty or too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return bad("the scheme must be http or https")
	}
	if u.Opaque != "" || u.Host == "" || u.User != nil {
		return bad("no host")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?") || strings.HasSuffix(raw, "#") {
		return bad("an origin has no path, query or fragment")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" || strings.ContainsAny(host, " *") {
		return bad("no host")
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	out := scheme + "://" + host
	if port != "" {
		out += ":" + port
	}
	return out, nil
}
