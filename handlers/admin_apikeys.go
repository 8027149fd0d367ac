package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/handlers/forms"
	"github.com/tally-billing/tally/views"
)

// adminKeyStore is what the console's API keys page needs (*db.DB).
type adminKeyStore interface {
	FindAPIKeys(ctx context.Context) ([]billing.APIKey, error)
	CreateAPIKeyWithOrigins(ctx context.Context, name, scope string, lim billing.Limits, rateLimit int, origins []string) (billing.APIKey, string, error)
	UpdateAPIKey(ctx context.Context, ref string, up billing.APIKeyUpdate) (billing.APIKey, error)
	SetAPIKeyOrigins(ctx context.Context, ref string, origins []string) ([]string, error)
	RevokeAPIKey(ctx context.Context, ref string) (billing.APIKey, error)
}

// keyForms remembers the create forms already sent (their nonce, for a
// day, in this process), so a reload of the page that showed a secret
// makes no second key: LoadOrStore lets exactly one request through.
var keyForms sync.Map // nonce -> time sent

func firstKeyForm(nonce string) bool {
	now := time.Now()
	_, seen := keyForms.LoadOrStore(nonce, now)
	if !seen {
		keyForms.Range(func(k, v any) bool {
			if now.Sub(v.(time.Time)) > 24*time.Hour {
				keyForms.Delete(k)
			}
			return true
		})
	}
	return !seen
}

// parseOrigins reads allowed origins, one a line, with the same parser
// as the CLI's --allowed-origin; the first bad line is the error.
func parseOrigins(text string) ([]string, string) {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		o, err := billing.ParseOrigin(line)
		if err != nil {
			return nil, billing.ErrorMessage(err)
		}
		out = append(out, o)
	}
	if len(out) > 100 {
		return nil, "List at most 100 origins."
	}
	return out, ""
}

// readKeyFields reads a key's scope, caps, rate limit and origins from the
// create or edit form, with each field's error beside it in f.
func readKeyFields(f *forms.Form, vf views.AdminAPIKeyForm) (billing.Limits, int, []string) {
	if !billing.ValidScope(vf.Scope) {
		f.Fail("scope", "Choose a scope.")
	}
	var lim billing.Limits
	lim.DailyCap = f.Credits("daily_cap", forms.Opts{Negative: "A cap can't be negative: leave it empty for no cap."})
	lim.MonthlyCap = f.Credits("monthly_cap", forms.Opts{Negative: "A cap can't be negative: leave it empty for no cap."})
	rate := 0
	if r := f.Whole("rate_limit", forms.Opts{Negative: "The rate limit can't be negative: leave it empty for none."}); r != nil {
		rate = *r
		if rate > 1_000_000 {
			f.Fail("rate_limit", "At most 1,000,000 requests per second.")
		}
	}
	origins, oerr := parseOrigins(vf.Origins)
	if oerr != "" {
		f.Fail("origins", oerr)
	} else if err := billing.CheckOrigins(vf.Scope, origins); err != nil && billing.ValidScope(vf.Scope) {
		f.Fail("origins", billing.ErrorMessage(err))
	}
	if f.Valid() {
		if err := lim.Validate(); err != nil {
			field := map[string]string{"daily_cap": "daily_cap", "monthly_cap": "monthly_cap"}[errorParam(err)]
			if field == "" {
				field = "daily_cap"
			}
			f.Fail(field, billing.ErrorMessage(err))
		}
	}
	return lim, rate, origins
}

// keyForm is a key's settings as its edit form shows them.
func keyForm(k billing.APIKey) views.AdminAPIKeyForm {
	capText := func(c *billing.Credits) string {
		if c == nil {
			return ""
		}
		return c.String()
	}
	vf := views.AdminAPIKeyForm{Name: k.Name, Scope: k.Scope, DailyCap: capText(k.Limits.DailyCap), MonthlyCap: capText(k.Limits.MonthlyCap),
		Origins: strings.Join(k.AllowedOrigins, "\n")}
	if k.RateLimit > 0 {
		vf.RateLimit = strconv.Itoa(k.RateLimit)
	}
	return vf
}

// GET /admin/api-keys/:id: a key, and for admins the form that changes
// its scope, caps, rate limit and allowed origins.
func (s *Server) adminAPIKey(c echo.Context) error {
	key, err := findKey(c, s.store.(adminKeyStore), c.Param("id"))
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AdminAPIKeyView(s.adminShell(c, key.Name, "api-keys"),
		views.AdminAPIKeyPage{Key: key, Scopes: billing.Scopes(), Form: keyForm(key)}))
}

// POST /admin/api-keys/:id saves a key's scope, caps, rate limit and
// allowed origins at once; the store writes the audit record (the key
// before and after) in the same transaction.
func (s *Server) adminAPIKeyUpdate(c echo.Context) error {
	ks := s.store.(adminKeyStore)
	key, err := findKey(c, ks, c.Param("id"))
	if err != nil {
		return err
	}
	f := readForm(c)
	vf := views.AdminAPIKeyForm{Name: key.Name, Scope: f.Value("scope"), DailyCap: f.Value("daily_cap"), MonthlyCap: f.Value("monthly_cap"),
		RateLimit: f.Value("rate_limit"), Origins: f.Value("origins")}
	lim, rate, origins := readKeyFields(f, vf)
	if !f.Valid() {
		vf.Errors = f.Errors
		return render(c, http.StatusUnprocessableEntity, views.AdminAPIKeyView(s.adminShell(c, key.Name, "api-keys"),
			views.AdminAPIKeyPage{Key: key, Scopes: billing.Scopes(), Form: vf}))
	}
	k, err := ks.UpdateAPIKey(s.audited(c, billing.AuditAPIKeyUpdated, "", "", "", ""), key.ID,
		billing.APIKeyUpdate{Scope: vf.Scope, Limits: lim, RateLimit: rate, Origins: origins})
	if billing.ErrorCode(err) == billing.CodeConflict {
		return adminFlashTo(c, "error", billing.ErrorMessage(err), "/admin/api-keys")
	}
	if err != nil {
		return err
	}
	return adminFlashTo(c, "success", k.Name+" saved: "+k.Scope+" scope"+keyCapsWords(k)+".", "/admin/api-keys")
}

// keyCapsWords is ", no caps" or ", caps 100 a day, 5 req/s".
func keyCapsWords(k billing.APIKey) string {
	var parts []string
	if k.Limits.DailyCap != nil {
		parts = append(parts, k.Limits.DailyCap.String()+" a day")
	}
	if k.Limits.MonthlyCap != nil {
		parts = append(parts, k.Limits.MonthlyCap.String()+" a month")
	}
	if k.RateLimit > 0 {
		parts = append(parts, strconv.Itoa(k.RateLimit)+" req/s")
	}
	if len(parts) == 0 {
		return ", no caps"
	}
	return ", caps " + strings.Join(parts, ", ")
}

// GET /admin/api-keys: every key, newest first.
func (s *Server) adminAPIKeys(c echo.Context) error {
	return s.renderAdminAPIKeys(c, http.StatusOK, views.AdminAPIKeysPage{Form: views.AdminAPIKeyForm{Scope: billing.ScopeRead, Nonce: confirmKey()}})
}

func (s *Server) renderAdminAPIKeys(c echo.Context, status int, d views.AdminAPIKeysPage) error {
	var err error
	if d.Keys, err = s.store.(adminKeyStore).FindAPIKeys(c.Request().Context()); err != nil {
		return err
	}
	d.Scopes = billing.Scopes()
	return render(c, status, views.AdminAPIKeysView(s.adminShell(c, "API keys", "api-keys"), d))
}

// POST /admin/api-keys creates a key and shows its secret, once (only its
// hash is stored).
func (s *Server) adminAPIKeyCreate(c echo.Context) error {
	f := readForm(c)
	vf := views.AdminAPIKeyForm{Name: strings.TrimSpace(f.Value("name")), Scope: f.Value("scope"), DailyCap: f.Value("daily_cap"),
		MonthlyCap: f.Value("monthly_cap"), RateLimit: f.Value("rate_limit"), Origins: f.Value("origins"), Nonce: f.Value("nonce")}
	if vf.Nonce == "" || len(vf.Nonce) > 100 {
		vf.Nonce = confirmKey()
	}
	switch {
	case vf.Name == "":
		f.Fail("name", "Name the key after what uses it, such as \"Production app server\".")
	case len(vf.Name) > 100:
		f.Fail("name", "Keep the name under 100 characters.")
	}
	lim, rate, origins := readKeyFields(f, vf)
	if !f.Valid() {
		vf.Errors = f.Errors
		return s.renderAdminAPIKeys(c, http.StatusUnprocessableEntity, views.AdminAPIKeysPage{Form: vf})
	}
	if !firstKeyForm(vf.Nonce) {
		return adminFlashTo(c, "info", "This form was sent already: its key is in the list, and its secret was shown once.", "/admin/api-keys")
	}
	// The key, its origins and the audit record: one transaction.
	k, secret, err := s.store.(adminKeyStore).CreateAPIKeyWithOrigins(s.audited(c, billing.AuditAPIKeyCreated, "", "", "", ""), vf.Name, vf.Scope, lim, rate, origins)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AdminSecretView(s.adminShell(c, "API key created", "api-keys"), views.AdminSecret{
		Heading: "API key created", Intro: "The secret of " + k.Name + " (" + k.Scope + " scope). Only its hash is stored: put it in your app's secrets now.",
		Secret: secret, Back: "/admin/api-keys", BackLabel: "Back to API keys"}))
}

// POST /admin/api-keys/:id/origins replaces a key's allowed origins.
func (s *Server) adminAPIKeyOrigins(c echo.Context) error {
	ks := s.store.(adminKeyStore)
	id := c.Param("id")
	key, err := findKey(c, ks, id)
	if err != nil {
		return err
	}
	text := c.FormValue("origins")
	origins, oerr := parseOrigins(text)
	if oerr == "" {
		if err := billing.CheckOrigins(key.Scope, origins); err != nil {
			oerr = billing.ErrorMessage(err)
		}
	}
	if oerr != "" {
		return s.renderAdminAPIKeys(c, http.StatusUnprocessableEntity, views.AdminAPIKeysPage{Form: views.AdminAPIKeyForm{Scope: billing.ScopeRead, Nonce: confirmKey()},
			EditKey: key.ID, EditOrigins: text, EditError: oerr})
	}
	set, err := ks.SetAPIKeyOrigins(s.audited(c, billing.AuditAPIKeyOrigins, "", "", "", ""), key.ID, origins)
	if err != nil {
		return err
	}
	return adminFlashTo(c, "success", "Allowed origins of "+key.Name+" saved ("+plural(len(set), "origin")+").", "/admin/api-keys")
}

func findKey(c echo.Context, ks adminKeyStore, id string) (billing.APIKey, error) {
	keys, err := ks.FindAPIKeys(c.Request().Context())
	if err != nil {
		return billing.APIKey{}, err
	}
	for _, k := range keys {
		if k.ID == id {
			return k, nil
		}
	}
	return billing.APIKey{}, billing.Errorf(billing.CodeNotFound, "No API key %q.", id)
}

// POST /admin/api-keys/:id/revoke: after a confirmation.
func (s *Server) adminAPIKeyRevoke(c echo.Context) error {
	ks := s.store.(adminKeyStore)
	key, err := findKey(c, ks, c.Param("id"))
	if err != nil {
		return err
	}
	if key.RevokedAt != nil {
		return adminFlashTo(c, "info", key.Name+" was revoked already.", "/admin/api-keys")
	}
	if c.FormValue("confirm") != "1" {
		return render(c, http.StatusOK, views.AdminConfirmActionView(s.adminShell(c, "Revoke the key", "api-keys"), views.AdminConfirmAction{
			Heading: "Revoke " + key.Name + "?", Message: "Requests with " + key.Prefix + "… are refused within seconds, and its embed tokens stop working. This can't be undone: create a new key to replace it.",
			Action: "/admin/api-keys/" + key.ID + "/revoke", Button: "Revoke key", Cancel: "/admin/api-keys", Danger: true}))
	}
	if _, err := ks.RevokeAPIKey(s.audited(c, billing.AuditAPIKeyRevoked, "", "", "", ""), key.ID); err != nil {
		return err
	}
	return adminFlashTo(c, "success", key.Name+" is revoked.", "/admin/api-keys")
}
