-- Jiuzhu payments ledger, adapters migration 1005 (sqlite): a batch node's `once_per`
-- key (docs/batches.md). A recipient listed by a run under a once key is recorded here
-- in the run's listing transaction; the primary key makes a later run under the same
-- once key (another unit's run of the same season) skip that recipient, so a household
-- is paid once per key whatever units the runs cover.
CREATE TABLE batch_once (
    once_key   TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    run_key    TEXT NOT NULL REFERENCES batch_runs (run_key),
    PRIMARY KEY (once_key, recipient)
);
