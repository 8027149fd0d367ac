package db

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"time"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix_ followed by n random bytes in lower-case base32.
func newID(prefix string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return prefix + "_" + idEncoding.EncodeToString(b)
}

// newSortedID is newID with the time first: 6 bytes of Unix milliseconds,
// then n random bytes. Ids made one after another sort one after another,
// so a table keyed by them grows at its end (one B-tree page per batch,
// not one page per row), which matters for holds on the hot path.
func newSortedID(prefix string, now time.Time, n int) string {
	b := make([]byte, 6+n)
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err)
	}
	return prefix + "_" + idEncoding.EncodeToString(b)
}

// EntryID formats a ledger entry's row id as its public id.
func EntryID(id int64) string { return "ent_" + strconv.FormatInt(id, 10) }

// LotID formats a lot's row id as its public id.
func LotID(id int64) string { return "lot_" + strconv.FormatInt(id, 10) }

func parseRowID(prefix, s string) (int64, error) {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok {
		return 0, fmt.Errorf("not a %s id", prefix)
	}
	return strconv.ParseInt(rest, 10, 64)
}
