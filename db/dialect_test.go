package db

import "testing"

func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{`SELECT '?' || ?, "odd?col" FROM t -- what?` + "\n" + `WHERE x = ?`, `SELECT '?' || $1, "odd?col" FROM t -- what?` + "\n" + `WHERE x = $2`},
		{`SELECT 'it''s ?', ? /* a ? here */, ?::bigint`, `SELECT 'it''s ?', $1 /* a ? here */, $2::bigint`},
		{`VALUES (?, ?), (?, ?)`, `VALUES ($1, $2), ($3, $4)`},
	} {
		if got := rebind(c.in); got != c.want {
			t.Errorf("rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
