-- Jiuzhu payments ledger, adapters migration 1005 (postgres): a batch node's `once_per`
-- key (docs/batches.md). A recipient listed by a run under a once key is recorded here
-- in the run's listing transaction; the primary key makes a later run under the same
-- once key (another unit's run of the same season) skip that recipient, so a household
-- is paid once per key whatever units the runs cover. Two runs listing at once: the
-- second insert waits on the first's row and, once it commits, inserts nothing.
CREATE TABLE batch_once (
    once_key   TEXT COLLATE "C" NOT NULL,
    recipient  TEXT COLLATE "C" NOT NULL,
    run_key    TEXT COLLATE "C" NOT NULL REFERENCES batch_runs (run_key),
    PRIMARY KEY (once_key, recipient)
);
