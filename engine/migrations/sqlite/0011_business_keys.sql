-- Jiuzhu store, schema 11: business keys. A process may declare `key:`; among its
-- active cases the key is unique. The row is written in the transaction of the case's
-- start and deleted in the transaction of its end, so the primary key refuses a second
-- active case with the same key however many nodes start cases at once.
CREATE TABLE business_keys (
    process_id TEXT NOT NULL,
    business_key TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    PRIMARY KEY (process_id, business_key)
);
-- The end deletes by instance.
CREATE UNIQUE INDEX business_keys_instance ON business_keys (instance_id);
