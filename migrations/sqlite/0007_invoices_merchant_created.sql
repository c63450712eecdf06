-- GET /v1/invoices?merchantID=: one merchant's invoices newest first, read from this index in order
-- instead of walking every merchant's newest invoices and skipping the others.
CREATE INDEX invoices_merchant_created ON invoices (merchant_id, created_at, invoice_no);
