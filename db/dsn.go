package db

import (
	"net/url"
)

// Redact returns dsn fit for logs and messages: a PostgreSQL URL's password
// is replaced by "xxxxx" (and a password= parameter likewise); a SQLite
// path is returned as it is.
func Redact(dsn string) string {
	if !IsPostgresDSN(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
