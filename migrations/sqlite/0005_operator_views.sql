-- Operator lists, retention and scrape-cost counters.

-- GET /v1/invoices: newest first, keyset pagination on (created_at, merchant_id, invoice_no).
CREATE INDEX invoices_created ON invoices (created_at, merchant_id, invoice_no);
-- Retention: settled invoices by their last change.
CREATE INDEX invoices_settled ON invoices (updated_at) WHERE status <> 'pending';

-- Gauges kept by triggers in the transaction of each change, so a scrape reads a few rows however
-- large the tables are. SQLite has one writer, so the triggers update gauge_counts directly;
-- gauge_deltas stays empty (it exists so both stores read the gauges with the same statement).
CREATE TABLE gauge_counts (
    name TEXT    PRIMARY KEY,
    n    INTEGER NOT NULL
);
CREATE TABLE gauge_deltas (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    name  TEXT    NOT NULL,
    delta INTEGER NOT NULL
);

CREATE TRIGGER invoices_count_insert AFTER INSERT ON invoices WHEN NEW.trusted
BEGIN
    INSERT INTO gauge_counts (name, n) VALUES ('invoices:' || NEW.status, 1)
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER invoices_count_delete AFTER DELETE ON invoices WHEN OLD.trusted
BEGIN
    INSERT INTO gauge_counts (name, n) VALUES ('invoices:' || OLD.status, -1)
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER invoices_count_update AFTER UPDATE OF status, trusted ON invoices
    WHEN OLD.status IS NOT NEW.status OR OLD.trusted IS NOT NEW.trusted
BEGIN
    INSERT INTO gauge_counts (name, n) VALUES ('invoices:' || OLD.status, -(OLD.trusted <> 0))
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
    INSERT INTO gauge_counts (name, n) VALUES ('invoices:' || NEW.status, (NEW.trusted <> 0))
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;

-- outbox:backlog = unpublished events; outbox:parked = unpublished events whose last attempt failed.
CREATE TRIGGER events_count_insert AFTER INSERT ON events WHEN NEW.published_at IS NULL
BEGIN
    INSERT INTO gauge_counts (name, n) VALUES ('outbox:backlog', 1)
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
    INSERT INTO gauge_counts (name, n) VALUES ('outbox:parked', (NEW.last_error IS NOT NULL))
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER events_count_delete AFTER DELETE ON events WHEN OLD.published_at IS NULL
BEGIN
    INSERT INTO gauge_counts (name, n) VALUES ('outbox:backlog', -1)
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
    INSERT INTO gauge_counts (name, n) VALUES ('outbox:parked', -(OLD.last_error IS NOT NULL))
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER events_count_update AFTER UPDATE OF published_at, last_error ON events
    WHEN OLD.published_at IS NOT NEW.published_at OR OLD.last_error IS NOT NEW.last_error
BEGIN
    INSERT INTO gauge_counts (name, n)
        VALUES ('outbox:backlog', (NEW.published_at IS NULL) - (OLD.published_at IS NULL))
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
    INSERT INTO gauge_counts (name, n)
        VALUES ('outbox:parked', (NEW.published_at IS NULL AND NEW.last_error IS NOT NULL)
                               - (OLD.published_at IS NULL AND OLD.last_error IS NOT NULL))
        ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
END;

-- Start from what is stored (the one full count; later ones are kept by the triggers).
INSERT INTO gauge_counts (name, n)
    SELECT 'invoices:' || status, COUNT(*) FROM invoices WHERE trusted = TRUE GROUP BY status;
INSERT INTO gauge_counts (name, n)
    SELECT 'outbox:backlog', COUNT(*) FROM events WHERE published_at IS NULL;
INSERT INTO gauge_counts (name, n)
    SELECT 'outbox:parked', COUNT(*) FROM events WHERE published_at IS NULL AND last_error IS NOT NULL;
