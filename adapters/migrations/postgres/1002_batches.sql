-- Jiuzhu payments ledger, adapters migration 1002 (postgres): batch runs over the
-- recipients of active benefits (docs/batches.md). Times are epoch milliseconds UTC.

-- One run per run key: a second batch under the same key is refused as a duplicate,
-- so nobody is paid twice for one season or month.
CREATE TABLE batch_runs (
    run_key     TEXT COLLATE "C" PRIMARY KEY,
    case_id     TEXT    NOT NULL,
    effect_id   TEXT    NOT NULL,
    node        TEXT    NOT NULL,
    as_of       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    recipients  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);

-- The recipients of a run, listed once when it starts: one row per (run key,
-- recipient), done once the recipient's payments are in the ledger. The payee's
-- personal data stay in benefit_entries; amount is what the recipient was paid
-- (null when nothing was due).
CREATE TABLE batch_items (
    run_key    TEXT COLLATE "C" NOT NULL REFERENCES batch_runs (run_key),
    recipient  TEXT COLLATE "C" NOT NULL,
    case_id    TEXT    NOT NULL,
    program    TEXT    NOT NULL,
    unit       TEXT    NOT NULL,
    benefit_id TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    amount     TEXT,
    done_at    BIGINT,
    PRIMARY KEY (run_key, recipient)
);
CREATE INDEX batch_items_pending ON batch_items (run_key, status, recipient);
