"""The Invoice Tracker: invoice rows and the sheet's layout (pure), the batched sync, and
the reconciliation that catches lost webhooks."""
