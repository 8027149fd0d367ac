package billing

// AuditActions is every action the audit log records: the Audit*
// constants, then the ledger's entries as "ledger.<type>" (a money change is
// its entry). The audit log's filter offers exactly these;
// TestAuditActionsComplete fails when an Audit* constant is missing here.
var AuditActions = []string{
	AuditSignIn, AuditSignOut, AuditSignOutAll, AuditAdminCreated, AuditAdminDisabled, AuditAdminEnabled, AuditAdminRoleChanged,
	AuditLimitsSet, AuditPortalLinkSent, AuditPortalViewed, AuditDisputeCleared, AuditCustomerFrozen, AuditCustomerUnfroze,
	AuditHoldReleased, AuditFreePeriod, AuditPlanMigrated, AuditPolicyUpdated,
	AuditPriceBookPublished, AuditPriceBookScheduled, AuditPriceBookRolledBack, AuditPriceBookCancelled,
	AuditPriceBookDraftSaved, AuditPriceBookDraftImported, AuditPriceBookDraftDiscarded,
	AuditWebhookCreated, AuditWebhookUpdated, AuditWebhookDeleted, AuditWebhookSecretRotated, AuditWebhookResent, AuditWebhookTested,
	AuditAPIKeyCreated, AuditAPIKeyUpdated, AuditAPIKeyOrigins, AuditAPIKeyRevoked,
	"ledger." + EntryGrant, "ledger." + EntryDebit, "ledger." + EntryHold, "ledger." + EntryHoldRelease,
	"ledger." + EntryExpiry, "ledger." + EntryRefund, "ledger." + EntryAdjustment,
}
