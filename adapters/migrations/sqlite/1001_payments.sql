-- Jiuzhu payments ledger, adapters migration 1001 (SQLite). Times are epoch milliseconds UTC
-- (INTEGER); months are 'YYYY-MM', dates 'YYYY-MM-DD'; money is the exact
-- decimal text ('705.00'), never a float, and is summed in rust_decimal.
-- The adapters' own migrations use versions 1000-1999 of _sqlx_migrations
-- (the engine's 1-999). These tables were the engine's migration 3 until the
-- adapters took them over; a database migrated then already has them, hence
-- IF NOT EXISTS throughout.

-- Every payment / payment_stop effect applied to the ledger, by its id: the
-- outbox delivers at least once, this key makes a second delivery a no-op.
CREATE TABLE IF NOT EXISTS payment_effects (
    effect_id   TEXT    PRIMARY KEY,
    instance_id TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL
);

-- A monthly benefit of one case under one program. The row never changes:
-- amount, stop and payee are in benefit_entries.
CREATE TABLE IF NOT EXISTS benefits (
    id         TEXT    PRIMARY KEY,
    case_id    TEXT    NOT NULL,
    program    TEXT    NOT NULL,
    unit       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (case_id, program)
);

-- Append-only: each change is a new entry taking effect from a month; the
-- benefit's state in month M is the latest entry of each kind effective by M.
CREATE TABLE IF NOT EXISTS benefit_entries (
    id              TEXT    PRIMARY KEY,
    benefit_id      TEXT    NOT NULL REFERENCES benefits (id),
    seq             INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    effective_month TEXT    NOT NULL,
    monthly_amount  TEXT,
    until_month     TEXT,
    review_on       TEXT,
    payee_name      TEXT,
    id_number       TEXT,
    account         TEXT,
    effect_id       TEXT    NOT NULL,
    recorded_at     INTEGER NOT NULL,
    UNIQUE (benefit_id, seq)
);

-- One payment to make. id is the reference sent to the bank and the
-- idempotency key: '{benefit}:{YYYY-MM}' for a monthly payment, the effect id
-- (with ':k' for staged installments) otherwise. A monthly run inserts at most
-- one row per (benefit, month); one-off rows have no benefit.
CREATE TABLE IF NOT EXISTS payment_instructions (
    id             TEXT    PRIMARY KEY,
    kind           TEXT    NOT NULL,
    benefit_id     TEXT    REFERENCES benefits (id),
    month          TEXT    NOT NULL,
    case_id        TEXT    NOT NULL,
    program        TEXT    NOT NULL,
    unit           TEXT    NOT NULL,
    payee_name     TEXT    NOT NULL,
    id_number      TEXT,
    account        TEXT,
    amount         TEXT    NOT NULL,
    due_on         TEXT    NOT NULL,
    installment    INTEGER,
    installments   INTEGER,
    effect_id      TEXT,
    reissue_of     TEXT    REFERENCES payment_instructions (id),
    status         TEXT    NOT NULL DEFAULT 'scheduled',
    channel        TEXT,
    batch_id       TEXT,
    failure_reason TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (benefit_id, month)
);
CREATE INDEX IF NOT EXISTS payment_instructions_due ON payment_instructions (status, due_on);
CREATE INDEX IF NOT EXISTS payment_instructions_by_month ON payment_instructions (month);
CREATE INDEX IF NOT EXISTS payment_instructions_by_case ON payment_instructions (case_id, program);
CREATE INDEX IF NOT EXISTS payment_instructions_by_batch ON payment_instructions (batch_id);

-- A bank file. 'writing' from the moment its instructions are reserved until
-- the file is safely on disk; then 'sent' together with its instructions.
CREATE TABLE IF NOT EXISTS payment_batches (
    id                TEXT    PRIMARY KEY,
    file_name         TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    instruction_count INTEGER NOT NULL,
    total             TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    sent_at           INTEGER
);

-- Monthly runs done, so the cron trigger runs each month once.
CREATE TABLE IF NOT EXISTS payment_runs (
    month        TEXT    PRIMARY KEY,
    run_at       INTEGER NOT NULL,
    instructions INTEGER NOT NULL
);

-- The bank's verdict per reference, first report wins; fix_instance is the
-- payment_fix case opened for a failure.
CREATE TABLE IF NOT EXISTS payment_results (
    reference    TEXT    PRIMARY KEY REFERENCES payment_instructions (id),
    outcome      TEXT    NOT NULL,
    reason       TEXT,
    source       TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL,
    fix_instance TEXT
);
