package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tally-billing/tally/billing"
	"github.com/tally-billing/tally/db"
)

// The demo's admin console accounts. Like the demo API key they are fixed
// and public: --demo is for trying Tally on one's own machine, never for
// serving customers.
const (
	demoOwnerEmail      = "owner@demo.tally"
	demoOwnerPassword   = "demo-owner-password"
	demoSupportEmail    = "support@demo.tally"
	demoSupportPassword = "demo-support-password"
)

// seedDemoAdmins creates the demo owner and support accounts (once; later
// runs find them) and prints how to sign in.
func seedDemoAdmins(ctx context.Context, d *db.DB, out io.Writer, base string) error {
	for _, a := range []struct{ email, pw, role string }{
		{demoOwnerEmail, demoOwnerPassword, billing.RoleOwner},
		{demoSupportEmail, demoSupportPassword, billing.RoleSupport},
	} {
		if _, err := d.CreateAdmin(ctx, a.email, a.pw, a.role); err != nil && billing.ErrorCode(err) != billing.CodeConflict {
			return err
		}
	}
	fmt.Fprintf(out, `  Admin console:            %s/admin/sign-in
    owner:    %s / %s
    support:  %s / %s   (read-only)

`, base, demoOwnerEmail, demoOwnerPassword, demoSupportEmail, demoSupportPassword)
	return nil
}
