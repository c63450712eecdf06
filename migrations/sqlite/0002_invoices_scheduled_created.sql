-- Reconciliation gauges (oldest scheduled invoice, scheduled invoices past give_up_after) read
-- this index instead of scanning every scheduled invoice.
CREATE INDEX invoices_scheduled_created ON invoices (created_at) WHERE next_inquiry_at IS NOT NULL;
