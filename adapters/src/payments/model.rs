//! The ledger's values and its pure arithmetic: months, fen-exact amounts, staged
//! installments, masked ID numbers, and a benefit's state in a month from its entries.
//!
//! Nothing here does IO or reads the clock, so the money rules are tested on their own.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// A calendar month, `YYYY-MM`: the unit of a monthly benefit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    year: i32,
    month: u32,
}

/// Why a text is not a month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a month written YYYY-MM")]
pub struct BadMonth(pub String);

impl YearMonth {
    pub fn new(year: i32, month: u32) -> Option<YearMonth> {
        NaiveDate::from_ymd_opt(year, month, 1).map(|_| YearMonth { year, month })
    }

    pub fn of(date: NaiveDate) -> YearMonth {
        YearMonth {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn first_day(self) -> NaiveDate {
        // Constructed only through `new`/`of`, so the first day always exists.
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// The month `n` months later.
    pub fn plus(self, n: u32) -> YearMonth {
        YearMonth::of(
            self.first_day()
                .checked_add_months(Months::new(n))
                .unwrap_or(NaiveDate::MAX),
        )
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for YearMonth {
    type Err = BadMonth;

    fn from_str(text: &str) -> Result<YearMonth, BadMonth> {
        let bad = || BadMonth(text.to_owned());
        let (year, month) = text.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year = year.parse().map_err(|_| bad())?;
        let month = month.parse().map_err(|_| bad())?;
        YearMonth::new(year, month).ok_or_else(bad)
    }
}

impl Serialize for YearMonth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for YearMonth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why an amount cannot be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountProblem {
    #[error("is negative")]
    Negative,
    #[error("has fractions of a fen (more than two decimal places)")]
    FractionOfFen,
}

/// Checks that `amount` is payable (≥ 0, whole fen) and gives it exactly two decimal
/// places, the form the ledger stores and the bank file prints (`705.00`).
pub fn to_fen(amount: Decimal) -> Result<Decimal, AmountProblem> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(AmountProblem::Negative);
    }
    if amount.normalize().scale() > 2 {
        return Err(AmountProblem::FractionOfFen);
    }
    let mut fen = amount;
    fen.rescale(2);
    Ok(fen)
}

/// 一次审批、分阶段救助: `total` in `count` installments of `total / count` rounded down to
/// the fen, the last taking the remainder, so the parts always add up to the total.
pub fn split_installments(total: Decimal, count: u32) -> Vec<Decimal> {
    if count == 0 {
        return Vec::new();
    }
    let share = (total / Decimal::from(count)).round_dp_with_strategy(2, RoundingStrategy::ToZero);
    let mut parts = vec![share; count as usize];
    let rest = total - share * Decimal::from(count - 1);
    if let Some(last) = parts.last_mut() {
        *last = rest;
    }
    for part in &mut parts {
        part.rescale(2);
    }
    parts
}

/// An ID number as it may be shown in a file: the first and last four characters,
/// the rest starred (`2305**********1234`); a short number is starred entirely.
pub fn mask_id_number(id_number: &str) -> String {
    let chars: Vec<char> = id_number.trim().chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let middle = chars.len() - 8;
    let mut masked: String = chars[..4].iter().collect();
    masked.push_str(&"*".repeat(middle));
    masked.extend(&chars[chars.len() - 4..]);
    masked
}

/// Who receives a payment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Payee {
    pub name: String,
    pub id_number: Option<String>,
    /// Bank account (card) number the money goes to.
    pub account: Option<String>,
}

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The benefit begins with its monthly amount.
    Created,
    /// A new monthly amount from the entry's month (also resumes a stopped benefit).
    AmountChanged,
    /// No payment from the entry's month on.
    Stopped,
    /// Payments from the entry's month on go to this payee data.
    PayeeChanged,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Created => "created",
            EntryKind::AmountChanged => "amount_changed",
            EntryKind::Stopped => "stopped",
            EntryKind::PayeeChanged => "payee_changed",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        Some(match text {
            "created" => EntryKind::Created,
            "amount_changed" => EntryKind::AmountChanged,
            "stopped" => EntryKind::Stopped,
            "payee_changed" => EntryKind::PayeeChanged,
            _ => return None,
        })
    }
}

/// One append-only ledger entry of a benefit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenefitEntry {
    /// Order of recording within the benefit (1, 2, …).
    pub seq: i64,
    pub kind: EntryKind,
    pub effective_month: YearMonth,
    pub monthly_amount: Option<Decimal>,
    /// Last month paid, when the benefit has a known end.
    pub until_month: Option<YearMonth>,
    pub review_on: Option<NaiveDate>,
    /// Payee fields this entry sets (only the ones given change).
    pub payee_name: Option<String>,
    pub id_number: Option<String>,
    pub account: Option<String>,
}

/// What a benefit pays in one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyDue {
    pub amount: Decimal,
    pub payee: Payee,
}

/// The benefit's payment for `month`, replaying the entries in force by then in the order
/// they take effect (month, then order of recording). `None` when it has not started, is
/// stopped, has ended or pays nothing.
pub fn due_in_month(entries: &[BenefitEntry], month: YearMonth) -> Option<MonthlyDue> {
    let mut in_force: Vec<&BenefitEntry> = entries
        .iter()
        .filter(|e| e.effective_month <= month)
        .collect();
    in_force.sort_by_key(|e| (e.effective_month, e.seq));
    let mut amount: Option<Decimal> = None;
    let mut until: Option<YearMonth> = None;
    let mut payee = Payee::default();
    for entry in in_force {
        match entry.kind {
            EntryKind::Created | EntryKind::AmountChanged => {
                amount = entry.monthly_amount;
                until = entry.until_month;
            }
            EntryKind::Stopped => amount = None,
            EntryKind::PayeeChanged => {}
        }
        if let Some(name) = &entry.payee_name {
            payee.name = name.clone();
        }
        if entry.id_number.is_some() {
            payee.id_number = entry.id_number.clone();
        }
        if entry.account.is_some() {
            payee.account = entry.account.clone();
        }
    }
    let amount = amount.filter(|a| *a > Decimal::ZERO)?;
    if until.is_some_and(|last| month > last) {
        return None;
    }
    Some(MonthlyDue { amount, payee })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn month(text: &str) -> YearMonth {
        text.parse().expect("month")
    }

    fn entry(seq: i64, kind: EntryKind, from: &str, amount: Option<Decimal>) -> BenefitEntry {
        BenefitEntry {
            seq,
            kind,
            effective_month: month(from),
            monthly_amount: amount,
            until_month: None,
            review_on: None,
            payee_name: (seq == 1).then(|| "张三".to_owned()),
            id_number: None,
            account: (seq == 1).then(|| "6222000011112222".to_owned()),
        }
    }

    #[test]
    fn months_parse_print_and_step() {
        assert_eq!(month("2026-03").to_string(), "2026-03");
        assert_eq!(month("2026-12").plus(1), month("2027-01"));
        assert_eq!(month("2026-01").plus(13), month("2027-02"));
        for bad in ["2026-13", "2026-3", "26-03", "2026/03", "", "2026-00"] {
            assert!(bad.parse::<YearMonth>().is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_are_whole_fen() {
        assert_eq!(
            to_fen(dec!(705)).map(|a| a.to_string()),
            Ok("705.00".into())
        );
        assert_eq!(
            to_fen(dec!(705.500)).map(|a| a.to_string()),
            Ok("705.50".into())
        );
        assert_eq!(to_fen(dec!(0.001)), Err(AmountProblem::FractionOfFen));
        assert_eq!(to_fen(dec!(-1)), Err(AmountProblem::Negative));
    }

    #[test]
    fn installments_round_down_and_the_last_takes_the_rest() {
        let cases = [
            (
                dec!(1000.00),
                3,
                vec![dec!(333.33), dec!(333.33), dec!(333.34)],
            ),
            (dec!(0.05), 3, vec![dec!(0.01), dec!(0.01), dec!(0.03)]),
            (dec!(1200), 1, vec![dec!(1200.00)]),
            (dec!(999.99), 12, {
                let mut v = vec![dec!(83.33); 11];
                v.push(dec!(83.36));
                v
            }),
        ];
        for (total, count, expected) in cases {
            let parts = split_installments(total, count);
            assert_eq!(parts, expected, "{total} / {count}");
            assert_eq!(parts.iter().sum::<Decimal>(), total);
        }
        assert!(split_installments(dec!(10), 0).is_empty());
    }

    #[test]
    fn id_numbers_are_masked_between_the_first_and_last_four() {
        assert_eq!(mask_id_number("230502198001011234"), "2305**********1234");
        assert_eq!(mask_id_number("23050219800101123X"), "2305**********123X");
        assert_eq!(mask_id_number("12345678"), "********");
        assert_eq!(mask_id_number(""), "");
    }

    #[test]
    fn a_benefit_replays_its_entries_by_month() {
        let entries = vec![
            entry(1, EntryKind::Created, "2026-04", Some(dec!(705.00))),
            // Recorded later, effective earlier than the stop: order is by month first.
            entry(3, EntryKind::Stopped, "2026-10", None),
            entry(2, EntryKind::AmountChanged, "2026-07", Some(dec!(800.00))),
        ];
        let amount = |m: &str| due_in_month(&entries, month(m)).map(|d| d.amount);
        assert_eq!(amount("2026-03"), None);
        assert_eq!(amount("2026-04"), Some(dec!(705.00)));
        assert_eq!(amount("2026-06"), Some(dec!(705.00)));
        assert_eq!(amount("2026-07"), Some(dec!(800.00)));
        assert_eq!(amount("2026-09"), Some(dec!(800.00)));
        assert_eq!(amount("2026-10"), None);
        let due = due_in_month(&entries, month("2026-05")).expect("due");
        assert_eq!(due.payee.name, "张三");
        assert_eq!(due.payee.account.as_deref(), Some("6222000011112222"));

        let mut resumed = entries.clone();
        resumed.push(entry(
            4,
            EntryKind::AmountChanged,
            "2027-01",
            Some(dec!(650)),
        ));
        assert_eq!(due_in_month(&resumed, month("2026-12")), None);
        assert_eq!(
            due_in_month(&resumed, month("2027-01")).map(|d| d.amount),
            Some(dec!(650))
        );

        let mut ending = vec![entry(1, EntryKind::Created, "2026-04", Some(dec!(100)))];
        ending[0].until_month = Some(month("2026-05"));
        assert!(due_in_month(&ending, month("2026-05")).is_some());
        assert!(due_in_month(&ending, month("2026-06")).is_none());
    }
}
