-- Jiuzhu store, schema 8: the keyed history chain (see docs/audit.md).
-- history.scheme is how the row's hash was made: 1 plain SHA-256 (rows written
-- before this schema), 2 HMAC-SHA256 with the audit key, which also covers
-- state_hash, the hash of the case's state after the step. instances.head_mac
-- signs (id, version, history_hash, state hash) with the same key, so a step
-- checks the state it reads without reading the history; NULL on a case from
-- before the key until it is sealed.
ALTER TABLE history ADD COLUMN scheme INTEGER NOT NULL DEFAULT 1;
ALTER TABLE history ADD COLUMN state_hash TEXT;
ALTER TABLE instances ADD COLUMN head_mac TEXT;
