-- Jiuzhu payments ledger, adapters migration 1004 (SQLite): the monthly run at a
-- province's scale. Times are epoch milliseconds UTC.

-- A run goes through the benefits in key order, one transaction per page, and
-- records after each page the last benefit it covered (after_benefit), so a
-- restart resumes there. 'running' until the last page, then 'done'.
-- entries_seen is the number of benefit entries when the pass began: while it
-- is unchanged no benefit can have changed, so a rerun has nothing to do.
-- instructions counts the month's monthly instructions the runs created.
ALTER TABLE payment_runs ADD COLUMN status TEXT NOT NULL DEFAULT 'done';
ALTER TABLE payment_runs ADD COLUMN after_benefit TEXT;
ALTER TABLE payment_runs ADD COLUMN entries_seen INTEGER;
ALTER TABLE payment_runs ADD COLUMN finished_at INTEGER;

-- A closed month refuses runs and the bank's results for its instructions.
CREATE TABLE payment_months_closed (
    month     TEXT    PRIMARY KEY,
    closed_at INTEGER NOT NULL,
    closed_by TEXT    NOT NULL
);

-- A bank file streams its instructions in reference order; unbatched rows (all
-- of a fresh run) stay out of the index.
DROP INDEX IF EXISTS payment_instructions_by_batch;
CREATE INDEX payment_instructions_by_batch ON payment_instructions (batch_id, id)
    WHERE batch_id IS NOT NULL;
