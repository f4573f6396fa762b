-- Jiuzhu store, schema 9 (PostgreSQL): a due date counted through a year the
-- calendar does not cover is provisional (暂定) until a calendar covering the
-- year is deployed and the case's `calendar_changed` step counts it again.
ALTER TABLE tasks ADD COLUMN provisional BIGINT NOT NULL DEFAULT 0;
ALTER TABLE timers ADD COLUMN provisional BIGINT NOT NULL DEFAULT 0;
-- Few rows are provisional, and only for weeks: a partial index finds them.
CREATE INDEX timers_provisional ON timers (instance_id) WHERE provisional <> 0;
