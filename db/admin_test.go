package db_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

func TestAdminCreateAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	a, err := d.CreateAdmin(ctx, " Ops@Example.com ", "correct horse battery", billing.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if a.Email != "ops@example.com" || a.Role != billing.RoleAdmin || !strings.HasPrefix(a.ID, "adm_") {
		t.Fatalf("admin = %+v", a)
	}
	for _, tc := range []struct {
		name, email, pw, role, code string
	}{
		{"duplicate e-mail", "OPS@example.com", "another long password", billing.RoleSupport, billing.CodeConflict},
		{"bad e-mail", "ops", "another long password", billing.RoleSupport, billing.CodeValidation},
		{"short password", "x@example.com", "short", billing.RoleSupport, billing.CodeValidation},
		{"unknown role", "x@example.com", "another long password", "root", billing.CodeValidation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := d.CreateAdmin(ctx, tc.email, tc.pw, tc.role); billing.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
	got, err := d.AuthenticateAdmin(ctx, "ops@EXAMPLE.com", "correct horse battery")
	if err != nil || got.ID != a.ID {
		t.Fatalf("authenticate = %+v, %v", got, err)
	}
	if _, err := d.AuthenticateAdmin(ctx, "ops@example.com", "wrong password!!"); billing.ErrorCode(err) != billing.CodeUnauthorized {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := d.AuthenticateAdmin(ctx, "nobody@example.com", "correct horse battery"); billing.ErrorCode(err) != billing.CodeUnauthorized {
		t.Fatalf("unknown e-mail: %v", err)
	}
}

func TestAdminSessionsEnd(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	a, err := d.CreateAdmin(ctx, "owner@example.com", "correct horse battery", billing.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var ids []string
	for range 2 {
		id, err := d.StartAdminSession(ctx, billing.AdminSession{AdminID: a.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s, err := d.FindAdminSession(ctx, ids[0])
	if err != nil || !s.Live(now, time.Minute) {
		t.Fatalf("new session = %+v, %v", s, err)
	}
	if s.Live(now.Add(2*time.Minute), time.Minute) {
		t.Fatal("a session idle past the timeout is live")
	}
	if s.Live(now.Add(time.Hour), 2*time.Hour) {
		t.Fatal("a session past its maximum age is live")
	}
	if err := d.EndAdminSession(ctx, ids[0], now, billing.SessionSignedOut); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.FindAdminSession(ctx, ids[0]); s.Live(now, time.Minute) || s.EndReason != billing.SessionSignedOut {
		t.Fatalf("signed-out session = %+v", s)
	}
	n, err := d.EndAdminSessions(ctx, a.ID, now, billing.SessionRevoked)
	if err != nil || n != 1 {
		t.Fatalf("end all = %d, %v, want 1", n, err)
	}
	if s, _ := d.FindAdminSession(ctx, ids[1]); s.Live(now, time.Minute) {
		t.Fatal("a revoked session is live")
	}
	if _, err := d.FindAdminSession(ctx, "made-up"); billing.ErrorCode(err) != billing.CodeNotFound {
		t.Fatalf("unknown session: %v", err)
	}
	if n, err := d.SweepAdminSessions(ctx, now.Add(30*time.Minute)); err != nil || n != 0 {
		t.Fatalf("sweep before the maximum age: %d, %v", n, err)
	}
	if n, err := d.SweepAdminSessions(ctx, now.Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("sweep at the maximum age: %d, %v, want 2", n, err)
	}
	if _, err := d.FindAdminSession(ctx, ids[0]); billing.ErrorCode(err) != billing.CodeNotFound {
		t.Fatalf("a swept session: %v", err)
	}
}

// The audit log is append-only: the store has no method that changes or
// removes a record, and the database refuses an UPDATE or DELETE that a
// future bug might try.
func TestAuditLogIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	d := mustOpenDB(t, nil)
	actor := billing.AdminActor("adm_x")
	if err := d.RecordAudit(ctx, billing.AuditRecord{Actor: actor, Action: billing.AuditSignIn}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE admin_audit SET action = 'x'`, `DELETE FROM admin_audit`} {
		err := d.Write(ctx, func(tx *db.Tx) error { return db.ExecForTest(tx, q) })
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the trigger's refusal", q, err)
		}
	}
	recs, _, err := d.FindAudit(ctx, billing.AuditFilter{})
	if err != nil || len(recs) != 1 || recs[0].Action != billing.AuditSignIn {
		t.Fatalf("audit = %+v, %v", recs, err)
	}
	if err := d.RecordAudit(ctx, billing.AuditRecord{Action: "x"}); billing.ErrorCode(err) != billing.CodeValidation {
		t.Fatalf("a record without an actor: %v", err)
	}
}

// FindAudit merges admin actions and ledger entries newest first, pages
// through both with one cursor and filters by actor, customer and action.
func TestFindAuditMergesAndPages(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	d := mustOpenDB(t, clk.Now)
	cus := mustCustomer(t, d, "c1", 0)
	other := mustCustomer(t, d, "c2", 0)
	admin := billing.AdminActor("adm_1")
	for i := range 3 {
		clk.Add(time.Second)
		if _, err := d.Grant(ctx, billing.GrantRequest{Customer: cus, Credits: billing.CreditsOf(int64(i + 1)), Source: billing.SourcePromo, Reason: "promo", Actor: admin}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
		if err := d.RecordAudit(ctx, billing.AuditRecord{Actor: admin, Action: billing.AuditLimitsSet, Customer: cus, Reason: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Second)
	if _, err := d.Grant(ctx, billing.GrantRequest{Customer: other, Credits: billing.CreditsOf(9), Source: billing.SourcePurchase, Actor: billing.SystemActor("refund")}); err != nil {
		t.Fatal(err)
	}
	var all []billing.AuditRecord
	cursor := ""
	for page := 0; ; page++ {
		recs, next, err := d.FindAudit(ctx, billing.AuditFilter{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
		if next == "" {
			break
		}
		if page > 10 {
			t.Fatal("the cursor does not end")
		}
		cursor = next
	}
	want := []string{"ledger.grant", billing.AuditLimitsSet, "ledger.grant", billing.AuditLimitsSet, "ledger.grant", billing.AuditLimitsSet, "ledger.grant"}
	if len(all) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(all), len(want), all)
	}
	for i := range want {
		if all[i].Action != want[i] {
			t.Errorf("record %d = %s, want %s", i, all[i].Action, want[i])
		}
		if i > 0 && all[i].At.After(all[i-1].At) {
			t.Errorf("record %d is newer than record %d", i, i-1)
		}
	}
	if all[1].Before != "" || all[2].Before != "3" || all[2].After != "6" || all[2].Actor != admin || all[2].Reason != "promo" {
		t.Errorf("the third grant's record = %+v, want 3 -> 6 by the admin", all[2])
	}
	count := func(f billing.AuditFilter) int {
		recs, _, err := d.FindAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	if n := count(billing.AuditFilter{Customer: other}); n != 1 {
		t.Errorf("customer filter: %d, want 1", n)
	}
	if n := count(billing.AuditFilter{Actor: "admin"}); n != 6 {
		t.Errorf("actor kind filter: %d, want 6", n)
	}
	if n := count(billing.AuditFilter{Actor: "system:refund"}); n != 1 {
		t.Errorf("actor filter: %d, want 1", n)
	}
	if n := count(billing.AuditFilter{Action: billing.AuditLimitsSet}); n != 3 {
		t.Errorf("action filter: %d, want 3", n)
	}
	if n := count(billing.AuditFilter{Action: "ledger.grant", Customer: cus}); n != 3 {
		t.Errorf("ledger action filter: %d, want 3", n)
	}
	if _, _, err := d.FindAudit(ctx, billing.AuditFilter{Cursor: "nope"}); billing.ErrorCode(err) != billing.CodeInvalidRequest {
		t.Errorf("bad cursor: %v", err)
	}
}
