-- Jiuzhu payments ledger, adapters migration 1006 (SQLite): each benefit's current terms,
-- so a monthly run reads one row per benefit instead of replaying its entries.

-- What a benefit pays in every month from from_month on: the replay of all its entries
-- (benefit_entries stays the record; this row is derived from it). from_month is the
-- latest effective month among the entries, so no entry can take effect after it and
-- the replay of the entries in force in a month M >= from_month is the replay of all of
-- them. amount is the deciding entry's text (the last created, amount_changed or
-- stopped) when it pays above zero, NULL when it does not; until_month is that entry's;
-- the payee fields are each the last one recorded ('' for a name never given). The row
-- is rewritten by the transaction that appends an entry (the ledger's only way to change
-- a benefit); case, program and unit are copied from the benefit, whose row never
-- changes. A run of a month before from_month (an entry dated ahead, e.g. an amount
-- change from next month) replays the entries as before. A benefit without entries has
-- no row: it pays nothing.
CREATE TABLE benefit_terms (
    benefit_id  TEXT PRIMARY KEY REFERENCES benefits (id),
    case_id     TEXT NOT NULL,
    program     TEXT NOT NULL,
    unit        TEXT NOT NULL,
    from_month  TEXT NOT NULL,
    amount      TEXT,
    until_month TEXT,
    payee_name  TEXT NOT NULL,
    id_number   TEXT,
    account     TEXT
) WITHOUT ROWID;

-- The benefits recorded before this migration (the same statement the ledger runs for a
-- benefit after each entry, for all of them).
INSERT INTO benefit_terms (benefit_id, case_id, program, unit, from_month, amount,
                           until_month, payee_name, id_number, account)
SELECT b.id, b.case_id, b.program, b.unit,
       (SELECT MAX(e.effective_month) FROM benefit_entries e WHERE e.benefit_id = b.id),
       (SELECT CASE WHEN e.kind <> 'stopped' AND e.monthly_amount NOT LIKE '-%'
                     AND REPLACE(REPLACE(e.monthly_amount, '0', ''), '.', '') <> ''
                    THEN e.monthly_amount END
          FROM benefit_entries e WHERE e.benefit_id = b.id
           AND e.kind IN ('created', 'amount_changed', 'stopped')
         ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1),
       (SELECT e.until_month FROM benefit_entries e WHERE e.benefit_id = b.id
           AND e.kind IN ('created', 'amount_changed', 'stopped')
         ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1),
       COALESCE((SELECT e.payee_name FROM benefit_entries e WHERE e.benefit_id = b.id
                    AND e.payee_name IS NOT NULL
                  ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1), ''),
       (SELECT e.id_number FROM benefit_entries e WHERE e.benefit_id = b.id
           AND e.id_number IS NOT NULL ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1),
       (SELECT e.account FROM benefit_entries e WHERE e.benefit_id = b.id
           AND e.account IS NOT NULL ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1)
  FROM benefits b
 WHERE EXISTS (SELECT 1 FROM benefit_entries e WHERE e.benefit_id = b.id);
