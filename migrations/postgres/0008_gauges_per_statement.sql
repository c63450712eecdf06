-- The gauges of migration 0005, kept per statement instead of per row: each statement that
-- changes invoices or events appends at most one delta per gauge it moves, summed over the rows it
-- changed (its transition tables). A group of notifications written with one statement per table
-- then appends a handful of deltas instead of several per notification. The counts and what they
-- mean are unchanged.

DROP TRIGGER invoices_count_insert_delete ON invoices;
DROP TRIGGER invoices_count_update ON invoices;
DROP TRIGGER events_count_insert_delete ON events;
DROP TRIGGER events_count_update ON events;
DROP FUNCTION pgw_invoices_count();
DROP FUNCTION pgw_events_count();

-- Trusted invoices per status: -1 for each old row, +1 for each new row, summed per status.
CREATE FUNCTION pgw_invoices_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO gauge_deltas (name, delta)
            SELECT 'invoices:' || status, COUNT(*) FROM new_rows WHERE trusted GROUP BY status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO gauge_deltas (name, delta)
            SELECT 'invoices:' || status, -COUNT(*) FROM old_rows WHERE trusted GROUP BY status;
    ELSE
        INSERT INTO gauge_deltas (name, delta)
            SELECT name, SUM(d) FROM (
                SELECT 'invoices:' || status AS name, -1 AS d FROM old_rows WHERE trusted
                UNION ALL SELECT 'invoices:' || status, 1 FROM new_rows WHERE trusted
            ) changed GROUP BY name HAVING SUM(d) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER invoices_count_insert AFTER INSERT ON invoices
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgw_invoices_count();
CREATE TRIGGER invoices_count_update AFTER UPDATE ON invoices
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgw_invoices_count();
CREATE TRIGGER invoices_count_delete AFTER DELETE ON invoices
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pgw_invoices_count();

-- outbox:backlog = unpublished events; outbox:parked = unpublished events whose last attempt failed.
CREATE FUNCTION pgw_events_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    backlog BIGINT := 0;
    parked  BIGINT := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT backlog - COUNT(*) FILTER (WHERE published_at IS NULL),
               parked - COUNT(*) FILTER (WHERE published_at IS NULL AND last_error IS NOT NULL)
          INTO backlog, parked FROM old_rows;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        SELECT backlog + COUNT(*) FILTER (WHERE published_at IS NULL),
               parked + COUNT(*) FILTER (WHERE published_at IS NULL AND last_error IS NOT NULL)
          INTO backlog, parked FROM new_rows;
    END IF;
    IF backlog <> 0 THEN
        INSERT INTO gauge_deltas (name, delta) VALUES ('outbox:backlog', backlog);
    END IF;
    IF parked <> 0 THEN
        INSERT INTO gauge_deltas (name, delta) VALUES ('outbox:parked', parked);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER events_count_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgw_events_count();
CREATE TRIGGER events_count_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgw_events_count();
CREATE TRIGGER events_count_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pgw_events_count();
