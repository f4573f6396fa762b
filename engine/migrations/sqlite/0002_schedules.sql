-- Jiuzhu store, schema 2 (SQLite): cron schedules of deployed definitions.
-- Times are epoch milliseconds UTC (INTEGER).

-- One row per (process, schedule id): the next occurrence to start. A node
-- claims a due row with a lease (available_at = lease end), starts the
-- occurrence's instance under an id derived from the occurrence (so a second
-- start of it is a duplicate key) and then moves next_due_at on with a
-- compare-and-set on the occurrence it started.
CREATE TABLE schedules (
    process_id      TEXT    NOT NULL,
    schedule_id     TEXT    NOT NULL,
    cron            TEXT    NOT NULL,
    next_due_at     INTEGER NOT NULL,
    available_at    INTEGER NOT NULL,
    claimed_by      TEXT,
    last_started_at INTEGER,
    PRIMARY KEY (process_id, schedule_id)
);
CREATE INDEX schedules_available ON schedules (available_at);
