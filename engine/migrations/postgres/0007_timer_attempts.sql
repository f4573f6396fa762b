-- Jiuzhu store, schema 7 (PostgreSQL): poison timers. attempts counts the claims of a
-- timer (a claim is counted before the firing, so a process killed mid-firing
-- counts too); a timer whose firings keep failing is parked: parked_at set,
-- last_error kept, available_at pushed past any claim, until an operator retries it.
ALTER TABLE timers ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE timers ADD COLUMN parked_at BIGINT;
ALTER TABLE timers ADD COLUMN last_error TEXT;

-- The outbox counts claims beside failed attempts: a claim whose attempt never
-- reported back (the node died or hung mid-delivery) shows as claims > attempts + 1.
ALTER TABLE outbox ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;
