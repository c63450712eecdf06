-- Invoices, their observed history, and the event outbox. Times are Unix milliseconds.
CREATE TABLE invoices (
    merchant_id      TEXT    NOT NULL,
    invoice_no       TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    amount_minor     BIGINT,
    currency         TEXT,
    exponent         INTEGER,
    origin           TEXT    NOT NULL,
    trusted          BOOLEAN NOT NULL,
    sequence         BIGINT  NOT NULL DEFAULT 0,
    resp_code        TEXT,
    resp_desc        TEXT,
    tran_ref         TEXT,
    notified_at      BIGINT,
    returned_at      BIGINT,
    needs_review     BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at       BIGINT,
    next_inquiry_at  BIGINT,
    inquiry_attempts INTEGER NOT NULL DEFAULT 0,
    last_inquiry_at  BIGINT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    PRIMARY KEY (merchant_id, invoice_no)
);
CREATE INDEX invoices_due ON invoices (next_inquiry_at) WHERE next_inquiry_at IS NOT NULL;
CREATE INDEX invoices_untrusted ON invoices (merchant_id, created_at) WHERE trusted = FALSE;

CREATE TABLE history (
    id          BIGSERIAL PRIMARY KEY,
    merchant_id TEXT   NOT NULL,
    invoice_no  TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    dedupe_key  TEXT   UNIQUE,
    resp_code   TEXT,
    resp_desc   TEXT,
    outcome     TEXT,
    raw         TEXT,
    normalized  TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX history_invoice ON history (merchant_id, invoice_no, id);

CREATE TABLE events (
    seq           BIGSERIAL PRIMARY KEY,
    event_id      TEXT    NOT NULL UNIQUE,
    merchant_id   TEXT    NOT NULL,
    invoice_no    TEXT    NOT NULL,
    sequence      BIGINT  NOT NULL,
    event_type    TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    published_at  BIGINT,
    claimed_until BIGINT,
    claimed_by    TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL;
CREATE INDEX events_invoice ON events (merchant_id, invoice_no, sequence);
CREATE INDEX events_created ON events (created_at);
