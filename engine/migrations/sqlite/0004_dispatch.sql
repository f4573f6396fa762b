-- Jiuzhu store, schema 4 (SQLite): what the outbox dispatcher keeps beside the
-- outbox. Times are epoch milliseconds UTC (INTEGER).

-- When the last delivery attempt of an entry failed; with last_error and
-- attempts it is what an incident (a dead entry) shows the operator.
ALTER TABLE outbox ADD COLUMN last_attempt_at INTEGER;

-- The incidents list: dead entries, oldest first.
CREATE INDEX outbox_dead ON outbox (created_at) WHERE status = 'dead';

-- The parts of one effect already delivered, by delivery key
-- ('<effect id>:<channel>' for a notification): when the webhook of an effect
-- is retried, its email, already sent, is not sent again.
CREATE TABLE outbox_deliveries (
    outbox_id    TEXT    NOT NULL REFERENCES outbox (id),
    delivery_key TEXT    NOT NULL,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (outbox_id, delivery_key)
);
