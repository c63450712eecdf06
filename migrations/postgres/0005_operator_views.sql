-- Operator lists, retention and scrape-cost counters.

-- GET /v1/invoices: newest first, keyset pagination on (created_at, merchant_id, invoice_no).
CREATE INDEX invoices_created ON invoices (created_at, merchant_id, invoice_no);
-- Retention: settled invoices by their last change.
CREATE INDEX invoices_settled ON invoices (updated_at) WHERE status <> 'pending';

-- Gauges kept by triggers in the transaction of each change, so a scrape reads a few rows however
-- large the tables are. Writers only append deltas (no hot row to contend on); whoever reads the
-- gauges folds them into gauge_counts first.
CREATE TABLE gauge_counts (
    name TEXT   PRIMARY KEY,
    n    BIGINT NOT NULL
);
CREATE TABLE gauge_deltas (
    id    BIGSERIAL PRIMARY KEY,
    name  TEXT   NOT NULL,
    delta BIGINT NOT NULL
);
-- Rows live for about a second, and reading the gauges scans this table: vacuum it after every
-- 10,000 folded rows instead of after a fraction of its (tiny) size, so dead rows never pile up.
ALTER TABLE gauge_deltas SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000);

CREATE FUNCTION pgw_invoices_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.trusted THEN
        INSERT INTO gauge_deltas (name, delta) VALUES ('invoices:' || OLD.status, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.trusted THEN
        INSERT INTO gauge_deltas (name, delta) VALUES ('invoices:' || NEW.status, 1);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER invoices_count_insert_delete AFTER INSERT OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION pgw_invoices_count();
CREATE TRIGGER invoices_count_update AFTER UPDATE OF status, trusted ON invoices
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.trusted IS DISTINCT FROM NEW.trusted)
    EXECUTE FUNCTION pgw_invoices_count();

-- outbox:backlog = unpublished events; outbox:parked = unpublished events whose last attempt failed.
CREATE FUNCTION pgw_events_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    backlog BIGINT := 0;
    parked  BIGINT := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        backlog := backlog - (OLD.published_at IS NULL)::int;
        parked := parked - (OLD.published_at IS NULL AND OLD.last_error IS NOT NULL)::int;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        backlog := backlog + (NEW.published_at IS NULL)::int;
        parked := parked + (NEW.published_at IS NULL AND NEW.last_error IS NOT NULL)::int;
    END IF;
    IF backlog <> 0 THEN
        INSERT INTO gauge_deltas (name, delta) VALUES ('outbox:backlog', backlog);
    END IF;
    IF parked <> 0 THEN
        INSERT INTO gauge_deltas (name, delta) VALUES ('outbox:parked', parked);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER events_count_insert_delete AFTER INSERT OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION pgw_events_count();
CREATE TRIGGER events_count_update AFTER UPDATE OF published_at, last_error ON events
    FOR EACH ROW WHEN (OLD.published_at IS DISTINCT FROM NEW.published_at OR OLD.last_error IS DISTINCT FROM NEW.last_error)
    EXECUTE FUNCTION pgw_events_count();

-- Start from what is stored (the one full count; later ones are kept by the triggers).
INSERT INTO gauge_counts (name, n)
    SELECT 'invoices:' || status, COUNT(*) FROM invoices WHERE trusted = TRUE GROUP BY status;
INSERT INTO gauge_counts (name, n)
    SELECT 'outbox:backlog', COUNT(*) FROM events WHERE published_at IS NULL;
INSERT INTO gauge_counts (name, n)
    SELECT 'outbox:parked', COUNT(*) FROM events WHERE published_at IS NULL AND last_error IS NOT NULL;
