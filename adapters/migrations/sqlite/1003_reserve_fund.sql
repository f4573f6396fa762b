-- Jiuzhu payments ledger, adapters migration 1003 (sqlite): the township reserve fund
-- (乡镇临时救助备用金). Times are epoch milliseconds UTC. Money here is whole fen
-- (INTEGER), not decimal text: a draw must compare and subtract inside the database, in one
-- conditional UPDATE, so that concurrent draws never take a balance below zero. The Rust
-- side converts exactly (rust_decimal, two places) in both directions.

-- One reserve per township unit: its balance, kept equal to the sum of its entries.
CREATE TABLE reserve_accounts (
    unit        TEXT PRIMARY KEY,
    balance_fen INTEGER NOT NULL CHECK (balance_fen >= 0),
    updated_at  INTEGER NOT NULL
);

-- Every movement, append-only: kind 'draw' (an emergency advance, delta < 0, keyed by the
-- payment effect's id so a retried draw is answered as before), 'refused' (a draw the
-- balance could not cover, delta 0, also keyed), 'replenish' (delta > 0, by whom and why).
-- balance_after_fen is the balance once the entry was applied.
CREATE TABLE reserve_entries (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    unit              TEXT NOT NULL,
    kind              TEXT    NOT NULL,
    amount_fen        INTEGER NOT NULL,
    delta_fen         INTEGER NOT NULL,
    balance_after_fen INTEGER NOT NULL,
    draw_key          TEXT UNIQUE,
    case_id           TEXT,
    by_user           TEXT,
    note              TEXT,
    at                INTEGER NOT NULL
);

CREATE INDEX reserve_entries_unit ON reserve_entries (unit, id);
