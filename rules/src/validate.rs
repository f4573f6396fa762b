//! Data checked at the door: the shapes of personal data (resident ID numbers, bank
//! accounts, names, birth dates) and a process's household against the case format
//! (`case.rs`), so bad data is refused when a case starts or a message arrives, with
//! every problem at its JSON path, instead of failing steps later at a rule step.
//!
//! Shapes decided here (documented in `docs/process-language.md`):
//! - a resident ID number (GB 11643-1999) is 18 characters: 17 digits and a check
//!   character (a digit or `X`, `x` accepted as `X`) that matches the ISO 7064 MOD 11-2
//!   checksum; the birth date it carries (characters 7–14) is a real date, not in the
//!   future and not before 1900;
//! - a bank account is 12 to 30 digits, nothing else (no spaces or dashes): personal
//!   debit cards have 16–19, passbook and older accounts fewer, corporate ones up to 30;
//! - a name is not blank, at most 50 characters, without control characters;
//! - a birth date is not in the future and not before 1900-01-01.
//!
//! Pure: `today` is an argument.

use chrono::NaiveDate;
use serde_json::Value as Json;

use crate::case::{InputError, parse_household};

/// Weights of the first 17 digits of a resident ID number (GB 11643-1999).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each remainder of the weighted sum modulo 11.
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Fewest and most digits of a bank account.
pub const ACCOUNT_DIGITS: (usize, usize) = (12, 30);
/// Longest name accepted, in characters.
pub const NAME_MAX_CHARS: usize = 50;

/// The earliest plausible birth date.
fn earliest_birth() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// Why `date` is no plausible birth date on `today`, if it is not.
pub fn birth_date_problem(date: NaiveDate, today: NaiveDate) -> Option<String> {
    if date > today {
        Some(format!(
            "birth date {date} is in the future (today is {today})"
        ))
    } else if date < earliest_birth() {
        Some(format!("birth date {date} is before 1900"))
    } else {
        None
    }
}

/// Why `text` is no valid resident ID number on `today`, if it is not. The message
/// never quotes the number (it is personal data).
pub fn id_number_problem(text: &str, today: NaiveDate) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() != 18 {
        return Some(format!(
            "an ID number has 18 characters, found {}",
            chars.len()
        ));
    }
    let mut sum = 0;
    for (i, c) in chars[..17].iter().enumerate() {
        match c.to_digit(10) {
            Some(d) => sum += d * ID_WEIGHTS[i],
            None => {
                return Some(format!(
                    "an ID number has digits in its first 17 places, found a non-digit at place {}",
                    i + 1
                ));
            }
        }
    }
    let last = chars[17].to_ascii_uppercase();
    if !(last.is_ascii_digit() || last == 'X') {
        return Some("an ID number ends in a digit or X".into());
    }
    let expected = ID_CHECK[(sum % 11) as usize];
    if last != expected {
        return Some("the check character does not match the ID number (GB 11643)".into());
    }
    let birth: String = chars[6..14].iter().collect();
    match NaiveDate::parse_from_str(&birth, "%Y%m%d") {
        Ok(date) => birth_date_problem(date, today).map(|p| format!("the ID number's {p}")),
        Err(_) => Some("the birth date in the ID number (places 7–14) is no real date".into()),
    }
}

/// Why `text` is no bank account number, if it is not. Never quotes the number.
pub fn bank_account_problem(text: &str) -> Option<String> {
    let (low, high) = ACCOUNT_DIGITS;
    if !text.chars().all(|c| c.is_ascii_digit()) {
        return Some(format!(
            "a bank account is {low} to {high} digits, without spaces or other characters"
        ));
    }
    let len = text.len();
    (!(low..=high).contains(&len))
        .then(|| format!("a bank account is {low} to {high} digits, found {len}"))
}

/// Why `text` is no name, if it is not. Never quotes the name.
pub fn name_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("must not be empty".into());
    }
    let count = text.chars().count();
    if count > NAME_MAX_CHARS {
        return Some(format!(
            "a name has at most {NAME_MAX_CHARS} characters, found {count}"
        ));
    }
    text.chars()
        .any(char::is_control)
        .then(|| "a name has no control characters".into())
}

/// What kind of personal datum a field of this name holds, for the checks at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    IdNumber,
    Account,
    Name,
    BirthDate,
}

/// The check a field named `key` gets; `name` only inside a household's members (elsewhere
/// it names a procedure or a file).
fn field_kind(key: &str, in_members: bool) -> Option<Field> {
    match key {
        "id_number" | "id_card" | "identity_number" | "idcard" => Some(Field::IdNumber),
        "account" | "bank_account" | "account_number" => Some(Field::Account),
        "applicant_name" | "payee" | "guardian_name" | "contact_name" => Some(Field::Name),
        "name" if in_members => Some(Field::Name),
        "birth_date" => Some(Field::BirthDate),
        _ => None,
    }
}

/// Checks every field of `json` (at any depth) whose name says it holds an ID number,
/// a bank account, a person's name or a birth date; `path` is the JSON path of `json`.
/// Null values pass (an optional field left empty).
pub fn check_personal_fields(json: &Json, path: &str, today: NaiveDate) -> Vec<InputError> {
    let mut out = Vec::new();
    walk(json, path, today, false, &mut out);
    out
}

fn walk(json: &Json, path: &str, today: NaiveDate, in_members: bool, out: &mut Vec<InputError>) {
    match json {
        Json::Object(map) => {
            for (key, value) in map {
                let sub = format!("{path}.{key}");
                match field_kind(key, in_members) {
                    Some(kind) => check_field(kind, value, &sub, today, out),
                    None => walk(value, &sub, today, key == "members", out),
                }
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), today, in_members, out);
            }
        }
        _ => {}
    }
}

fn check_field(kind: Field, value: &Json, path: &str, today: NaiveDate, out: &mut Vec<InputError>) {
    let text = match value {
        Json::Null => return,
        Json::String(s) => s.as_str(),
        // A number where a string belongs: an ID number or account typed as a number
        // loses leading zeros and its X; refused rather than guessed.
        _ => {
            out.push(problem(path, "must be a string"));
            return;
        }
    };
    let found = match kind {
        Field::IdNumber => id_number_problem(text, today),
        Field::Account => bank_account_problem(text),
        Field::Name => name_problem(text),
        Field::BirthDate => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => birth_date_problem(date, today),
            // The type check reports the shape.
            Err(_) => None,
        },
    };
    if let Some(message) = found {
        out.push(problem(path, message));
    }
}

fn problem(path: &str, message: impl Into<String>) -> InputError {
    InputError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Member fields a process's household may carry besides the case format's: checked
/// here as personal data, left out of what the rule programs read.
pub const MEMBER_EXTRA_FIELDS: [&str; 2] = ["name", "id_number"];

/// A household as the rule programs read it: the members' [`MEMBER_EXTRA_FIELDS`] left
/// out. Anything else is kept as it is (the case format refuses what it does not know).
pub fn household_for_rules(household: &Json) -> Json {
    let mut out = household.clone();
    if let Some(Json::Array(members)) = out.get_mut("members") {
        for member in members {
            if let Json::Object(map) = member {
                for key in MEMBER_EXTRA_FIELDS {
                    map.remove(key);
                }
            }
        }
    }
    out
}

/// Checks a process's household (`path` its JSON path, e.g. `$.household`) against the
/// case format the rule programs read (`spec/assess.md`: members with ids and birth
/// dates, income kinds, money >= 0 …) and its personal data; every problem at once.
pub fn check_household(json: &Json, path: &str, today: NaiveDate) -> Vec<InputError> {
    let mut out = check_personal_fields(json, path, today);
    if let Err(errors) = parse_household(&household_for_rules(json), today) {
        for error in errors {
            // Birth dates are judged above, with today's date named.
            if error.message == "must not be after as_of" {
                continue;
            }
            let rest = error
                .path
                .strip_prefix("$.household")
                .unwrap_or(&error.path);
            out.push(problem(&format!("{path}{rest}"), error.message));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup();
    out
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
