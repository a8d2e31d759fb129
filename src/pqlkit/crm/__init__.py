"""CRM both ways: PQL fields written to HubSpot and Salesforce as diffed, idempotent upserts
(a ledger of what each record last received), and deals and opportunities read back as
outcomes."""
