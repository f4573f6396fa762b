//! The monthly run's SQL (a page's `INSERT … SELECT`) and a benefit's current terms
//! (`benefit_terms`, adapters migration 1006): written from the entries in the
//! transaction that appends one, and from the seed's own entries on the bulk path.

use super::super::ledger::SeedBenefit;
use super::super::model::{BenefitEntry, EntryKind, YearMonth, due_in_month};

/// One page of a monthly run, `$1 < benefit <= $2`, for month `$3` (due on `$4`, written at
/// `$5`): what [`due_in_month`] decides for each benefit, in SQL, so a page is one
/// statement and no row of it travels to the ledger and back. It goes through the page's
/// `benefit_terms` rows (adapters migration 1006; a benefit without one has no entry and
/// pays nothing) in two parts:
///
/// - a month on or after the row's `from_month` (every entry in force): the row itself,
///   paid when it has an amount and the month is not after its `until_month`;
/// - an earlier month (an entry dated ahead of it): the entries replayed as [`due_in_month`]
///   does. The entries in force are those effective by the month, in (month, seq) order;
///   the last `created`, `amount_changed` or `stopped` of them decides: a stop pays
///   nothing, otherwise its amount is paid when above zero and the month is not after its
///   `until_month`; the payee's name, ID number and account are each the last one recorded.
///
/// Amounts are copied as the exact text they were stored in (whole fen, from [`to_fen`]),
/// never computed; "above zero" is read off the text (a digit other than 0, no sign). The
/// unique (benefit, month) keeps the first instruction of a benefit's month (a resumed or
/// concurrent run): `$skip_paid` may add a cheaper check (of `t.benefit_id`) before the
/// row is computed. `CROSS JOIN` keeps SQLite going through the page's terms rows first
/// (and means the plain join on PostgreSQL).
///
/// [`to_fen`]: super::model::to_fen
/// [`due_in_month`]: super::model::due_in_month
macro_rules! run_page_insert {
    ($skip_paid:literal) => {
        concat!(
            "INSERT INTO payment_instructions (id, kind, benefit_id, case_id, program, unit, \
             payee_name, id_number, account, amount, month, due_on, status, created_at, \
             updated_at) ",
            // Every entry in force: the terms row.
            "SELECT t.benefit_id || ':' || $3, 'monthly', t.benefit_id, t.case_id, t.program, \
             t.unit, t.payee_name, t.id_number, t.account, t.amount, $3, $4, 'scheduled', \
             $5, $5 \
             FROM benefit_terms t \
             WHERE t.benefit_id > $1 AND t.benefit_id <= $2 AND t.from_month <= $3 \
             AND t.amount IS NOT NULL AND (t.until_month IS NULL OR t.until_month >= $3)",
            $skip_paid,
            // An entry dated after the month: the entries in force replayed.
            " UNION ALL \
             SELECT t.benefit_id || ':' || $3, 'monthly', t.benefit_id, t.case_id, \
             t.program, t.unit, ",
            "COALESCE((SELECT e.payee_name FROM benefit_entries e \
             WHERE e.benefit_id = t.benefit_id \
             AND e.effective_month <= $3 AND e.payee_name IS NOT NULL \
             ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1), ''), ",
            "(SELECT e.id_number FROM benefit_entries e WHERE e.benefit_id = t.benefit_id \
             AND e.effective_month <= $3 AND e.id_number IS NOT NULL \
             ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1), ",
            "(SELECT e.account FROM benefit_entries e WHERE e.benefit_id = t.benefit_id \
             AND e.effective_month <= $3 AND e.account IS NOT NULL \
             ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1), ",
            "a.monthly_amount, $3, $4, 'scheduled', $5, $5 \
             FROM (SELECT f.benefit_id, f.case_id, f.program, f.unit, \
                     (SELECT e.seq FROM benefit_entries e WHERE e.benefit_id = f.benefit_id \
                      AND e.effective_month <= $3 \
                      AND e.kind IN ('created', 'amount_changed', 'stopped') \
                      ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1) AS seq \
                   FROM benefit_terms f \
                   WHERE f.benefit_id > $1 AND f.benefit_id <= $2 AND f.from_month > $3) t \
             CROSS JOIN benefit_entries a ",
            "WHERE a.benefit_id = t.benefit_id AND a.seq = t.seq \
             AND a.kind <> 'stopped' AND a.monthly_amount IS NOT NULL \
             AND a.monthly_amount NOT LIKE '-%' \
             AND REPLACE(REPLACE(a.monthly_amount, '0', ''), '.', '') <> '' \
             AND (a.until_month IS NULL OR a.until_month >= $3)",
            $skip_paid,
            " ON CONFLICT DO NOTHING"
        )
    };
}

/// SQLite: a benefit paid for the month already is passed over by a probe of the unique
/// (benefit, month) index before its row is computed (a rerun pass costs one probe each).
pub(super) const RUN_PAGE_INSERT_SQLITE: &str = run_page_insert!(
    " AND NOT EXISTS (SELECT 1 FROM payment_instructions i \
     WHERE i.benefit_id = t.benefit_id AND i.month = $3)"
);

/// PostgreSQL: the conflict clause alone. The planner would pick an anti-join's method
/// from the instructions' statistics, and with a table analysed while empty it scans the
/// table for every benefit (quadratic in the month); the insert's own unique check is
/// always an index probe.
pub(super) const RUN_PAGE_INSERT_POSTGRES: &str = run_page_insert!("");

/// A benefit's `benefit_terms` row written from all its entries (what [`due_in_month`]
/// gives for any month from the latest effective one on; see adapters migration 1006,
/// whose backfill is the same SELECT), for the benefits `$where` picks (a condition on
/// `b`, the benefit): run by the transaction that appends an entry.
///
/// [`due_in_month`]: super::model::due_in_month
macro_rules! terms_upsert {
    ($where:literal) => {
        concat!(
            "INSERT INTO benefit_terms (benefit_id, case_id, program, unit, from_month, amount, \
             until_month, payee_name, id_number, account) \
             SELECT b.id, b.case_id, b.program, b.unit, \
             (SELECT MAX(e.effective_month) FROM benefit_entries e WHERE e.benefit_id = b.id), \
             (SELECT CASE WHEN e.kind <> 'stopped' AND e.monthly_amount NOT LIKE '-%' \
                     AND REPLACE(REPLACE(e.monthly_amount, '0', ''), '.', '') <> '' \
                     THEN e.monthly_amount END \
              FROM benefit_entries e WHERE e.benefit_id = b.id \
              AND e.kind IN ('created', 'amount_changed', 'stopped') \
              ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1), \
             (SELECT e.until_month FROM benefit_entries e WHERE e.benefit_id = b.id \
              AND e.kind IN ('created', 'amount_changed', 'stopped') \
              ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1), \
             COALESCE((SELECT e.payee_name FROM benefit_entries e WHERE e.benefit_id = b.id \
              AND e.payee_name IS NOT NULL \
              ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1), ''), \
             (SELECT e.id_number FROM benefit_entries e WHERE e.benefit_id = b.id \
              AND e.id_number IS NOT NULL ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1), \
             (SELECT e.account FROM benefit_entries e WHERE e.benefit_id = b.id \
              AND e.account IS NOT NULL ORDER BY e.effective_month DESC, e.seq DESC LIMIT 1) \
             FROM benefits b WHERE ",
            $where,
            " AND EXISTS (SELECT 1 FROM benefit_entries e WHERE e.benefit_id = b.id) \
             ON CONFLICT (benefit_id) DO UPDATE SET from_month = excluded.from_month, \
             amount = excluded.amount, until_month = excluded.until_month, \
             payee_name = excluded.payee_name, id_number = excluded.id_number, \
             account = excluded.account"
        )
    };
}

/// The terms of one benefit, `$1`, after an entry of it.
pub(super) const TERMS_UPSERT_ONE: &str = terms_upsert!("b.id = $1");

/// A seeded benefit's current terms (see [`terms_upsert!`]): its latest effective month and
/// the amount it pays from then on, the text its entry holds (`None`: nothing), read by
/// [`due_in_month`] from the entries the seed writes. A seed has no end month, and its
/// payee is the one it records.
pub(super) fn seed_terms(seed: &SeedBenefit) -> (YearMonth, Option<String>) {
    let mut entries = vec![BenefitEntry {
        seq: 1,
        kind: EntryKind::Created,
        effective_month: seed.from,
        monthly_amount: Some(seed.amount),
        until_month: None,
        review_on: None,
        payee_name: Some(seed.payee.name.clone()),
        id_number: seed.payee.id_number.clone(),
        account: seed.payee.account.clone(),
    }];
    if let Some(stop) = seed.stopped_from {
        entries.push(BenefitEntry {
            seq: 2,
            kind: EntryKind::Stopped,
            effective_month: stop,
            monthly_amount: None,
            until_month: None,
            review_on: None,
            payee_name: None,
            id_number: None,
            account: None,
        });
    }
    let latest = seed
        .stopped_from
        .map_or(seed.from, |stop| stop.max(seed.from));
    let amount = due_in_month(&entries, latest).map(|due| due.amount.to_string());
    (latest, amount)
}
