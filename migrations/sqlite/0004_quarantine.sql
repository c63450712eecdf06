-- Verified notifications the store refused permanently (a data error, an unexpected constraint):
-- kept as received (redacted), with the error, until an operator releases them.
CREATE TABLE quarantine (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    merchant_id     TEXT    NOT NULL,
    invoice_no      TEXT,
    dedupe_key      TEXT    UNIQUE,
    raw             TEXT    NOT NULL,
    error           TEXT    NOT NULL,
    received_at     BIGINT  NOT NULL,
    released_at     BIGINT,
    release_outcome TEXT
);
CREATE INDEX quarantine_held ON quarantine (id) WHERE released_at IS NULL;
