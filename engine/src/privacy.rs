//! Masking of personal data (ID numbers, phone numbers, bank accounts, names) for what
//! staff screens and terminals show by default.
//!
//! Masking is for display only: the store keeps the full values, and a deliberate
//! `--reveal` shows them. The functions keep just enough to tell two people apart when
//! the person is at the counter (first digits of an ID number give the region, the last
//! four are what people quote), and count characters, not bytes, so Chinese text is safe.

use serde_json::Value;

/// `230***********1234`: the first 3 and last 4 characters kept, every other one masked.
/// Anything shorter than 8 characters is masked whole (there is nothing safe to keep).
pub fn mask_id_number(text: &str) -> String {
    keep_ends(text, 3, 4)
}

/// `138****0000`: the first 3 and last 4 digits of a phone number kept.
pub fn mask_phone(text: &str) -> String {
    keep_ends(text, 3, 4)
}

/// `************1234`: only the last 4 characters of a bank account kept.
pub fn mask_account(text: &str) -> String {
    keep_ends(text, 0, 4)
}

/// `张*`: the surname (the first character) and one star, whatever the length, so the
/// length of the given name is not shown either. An empty name stays empty.
pub fn mask_name(text: &str) -> String {
    let mut chars = text.trim().chars();
    match chars.next() {
        Some(first) => format!("{first}*"),
        None => String::new(),
    }
}

/// Free text about a person (an address, a note): the first 2 characters and `***`.
pub fn mask_text(text: &str) -> String {
    let kept: String = text.chars().take(2).collect();
    if text.chars().count() <= 2 {
        "*".repeat(text.chars().count())
    } else {
        format!("{kept}***")
    }
}

fn keep_ends(text: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < head + tail + 1 || chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < head || i >= chars.len() - tail {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// What kind of personal datum a field of this name holds, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personal {
    IdNumber,
    Phone,
    Account,
    Name,
    /// Everything inside is personal (a contact block, an address).
    Text,
}

/// The kind of personal datum a field named `key` holds. `name` counts only inside a
/// household's `members` (elsewhere it names a procedure or a file): see [`mask_json`].
pub fn personal_field(key: &str) -> Option<Personal> {
    match key {
        "id_number" | "id_card" | "identity_number" | "idcard" => Some(Personal::IdNumber),
        "phone" | "mobile" | "telephone" | "tel" => Some(Personal::Phone),
        "account" | "bank_account" | "old_account" | "account_number" => Some(Personal::Account),
        "applicant_name" | "payee" | "guardian_name" | "contact_name" => Some(Personal::Name),
        "contact" | "address" | "email" => Some(Personal::Text),
        _ => None,
    }
}

/// A copy of `value` with every field of a known personal-data name masked, at any depth:
/// ID numbers, phone numbers, bank accounts, applicants' and members' names, contact
/// blocks and addresses. Numbers under such names are masked as their digits.
pub fn mask_json(value: &Value) -> Value {
    walk(value, false)
}

fn walk(value: &Value, in_members: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, field)| {
                    let kind = personal_field(key).or(if in_members && key == "name" {
                        Some(Personal::Name)
                    } else {
                        None
                    });
                    let masked = match kind {
                        Some(kind) => mask_as(field, kind),
                        None => walk(field, key == "members"),
                    };
                    (key.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, in_members)).collect()),
        other => other.clone(),
    }
}

fn mask_as(value: &Value, kind: Personal) -> Value {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return Value::Null,
        // A block (a contact with phone and address): mask what it holds, every string.
        Value::Object(map) => {
            return Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let inner = personal_field(k).unwrap_or(Personal::Text);
                        (k.clone(), mask_as(v, inner))
                    })
                    .collect(),
            );
        }
        Value::Array(items) => {
            return Value::Array(items.iter().map(|v| mask_as(v, kind)).collect());
        }
        Value::Bool(b) => return Value::Bool(*b),
    };
    Value::String(match kind {
        Personal::IdNumber => mask_id_number(&text),
        Personal::Phone => mask_phone(&text),
        Personal::Account => mask_account(&text),
        Personal::Name => mask_name(&text),
        Personal::Text => mask_text(&text),
    })
}

/// Whether `text` (an ID number) matches `wanted`, ignoring case (the final `X`) and
/// spaces, so a clerk may type it as printed on the card.
pub fn same_id_number(text: &str, wanted: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_uppercase)
            .collect()
    };
    !wanted.trim().is_empty() && norm(text) == norm(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_numbers_keep_the_first_three_and_the_last_four() {
        assert_eq!(mask_id_number("230102195001011234"), "230***********1234");
        assert_eq!(mask_id_number("23010219500101123X"), "230***********123X");
        assert_eq!(mask_id_number("1234567"), "*******");
        assert_eq!(mask_id_number(""), "");
    }

    #[test]
    fn phones_keep_the_first_three_and_the_last_four() {
        assert_eq!(mask_phone("13800001234"), "138****1234");
        assert_eq!(mask_phone("110"), "***");
    }

    #[test]
    fn accounts_keep_the_last_four() {
        assert_eq!(mask_account("6222020200112233445"), "***************3445");
        assert_eq!(mask_account("1234"), "****");
    }

    #[test]
    fn names_keep_the_surname_only() {
        assert_eq!(mask_name("张秀兰"), "张*");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳明月"), "欧*");
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_text("黑龙江省双鸭山市"), "黑龙***");
    }

    #[test]
    fn json_fields_with_personal_names_are_masked_at_any_depth() {
        let case = json!({
            "applicant_name": "张秀兰",
            "area": "urban",
            "contact": {"phone": "13800001234", "address": "尖山区中心站街道1号"},
            "bank": {"account": "6222020200112233445", "id_number": "230102195001011234"},
            "household": {"members": [{"id": "m1", "name": "李四", "id_number": "230102195001015678"}]},
            "process": {"name": "dibao"}
        });
        let masked = mask_json(&case);
        assert_eq!(masked["applicant_name"], "张*");
        assert_eq!(masked["area"], "urban");
        assert_eq!(masked["contact"]["phone"], "138****1234");
        assert_eq!(masked["contact"]["address"], "尖山***");
        assert_eq!(masked["bank"]["account"], "***************3445");
        assert_eq!(masked["bank"]["id_number"], "230***********1234");
        let member = &masked["household"]["members"][0];
        assert_eq!(member["name"], "李*");
        assert_eq!(member["id"], "m1");
        assert_eq!(member["id_number"], "230***********5678");
        // `name` outside a household's members is no person's name.
        assert_eq!(masked["process"]["name"], "dibao");
        // Nothing of the full values is left anywhere.
        let text = masked.to_string();
        for secret in [
            "秀兰",
            "13800001234",
            "6222020200112233445",
            "230102195001011234",
            "李四",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn id_numbers_match_as_typed() {
        assert!(same_id_number("23010219500101123X", "230102 19500101 123x"));
        assert!(!same_id_number("230102195001011234", "230102195001011235"));
        assert!(!same_id_number("230102195001011234", " "));
    }
}
