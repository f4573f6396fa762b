//! Masking of personal data in API answers: ID numbers keep their first 3 and last 4
//! characters, bank accounts their last 4, names the surname. Fields are recognised by
//! their names, anywhere in a case's variables.

use serde_json::Value;

/// What kind of personal data a field name holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    IdNumber,
    Account,
    Name,
}

fn kind_of(field: &str) -> Option<Kind> {
    let f = field.to_ascii_lowercase();
    if f.contains("id_number")
        || f.contains("id_card")
        || f.contains("idcard")
        || f == "id_no"
        || f.contains("身份证")
    {
        Some(Kind::IdNumber)
    } else if f.contains("bank_account")
        || f.contains("account_number")
        || f.contains("account_no")
        || f == "account"
        || f == "iban"
        || f.contains("账号")
    {
        Some(Kind::Account)
    } else if f == "name" || f.ends_with("_name") || f.contains("姓名") {
        Some(Kind::Name)
    } else {
        None
    }
}

/// `110105199001011234` → `110***********1234`.
pub fn mask_id_number(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars[..3]
        .iter()
        .copied()
        .chain(std::iter::repeat_n('*', n - 7))
        .chain(chars[n - 4..].iter().copied())
        .collect()
}

/// `6222021234567890` → `************7890`.
pub fn mask_account(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    if n <= 4 {
        return "*".repeat(n);
    }
    std::iter::repeat_n('*', n - 4)
        .chain(chars[n - 4..].iter().copied())
        .collect()
}

/// `张秀兰` → `张**`: the surname stays (a first character; names here are Chinese).
pub fn mask_name(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => std::iter::once(first)
            .chain(chars.map(|c| if c.is_whitespace() { c } else { '*' }))
            .collect(),
        None => String::new(),
    }
}

/// Masks every personal field in `value`, recursively.
pub fn mask_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match (kind_of(key), &mut *field) {
                    (Some(kind), Value::String(text)) => {
                        *text = match kind {
                            Kind::IdNumber => mask_id_number(text),
                            Kind::Account => mask_account(text),
                            Kind::Name => mask_name(text),
                        }
                    }
                    (Some(kind), Value::Number(n)) if kind != Kind::Name => {
                        let text = n.to_string();
                        *field = Value::String(match kind {
                            Kind::IdNumber => mask_id_number(&text),
                            _ => mask_account(&text),
                        });
                    }
                    (_, other) => mask_json(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_fields_are_masked_wherever_they_are() {
        let mut value = serde_json::json!({
            "applicant_name": "张秀兰",
            "id_number": "110105199001011234",
            "household": {"members": [{"name": "李强", "id_card": "23050219800101002X", "income": "100.00"}]},
            "bank_account": "6222021234567890",
            "area": "urban",
        });
        mask_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({
                "applicant_name": "张**",
                "id_number": "110***********1234",
                "household": {"members": [{"name": "李*", "id_card": "230***********002X", "income": "100.00"}]},
                "bank_account": "************7890",
                "area": "urban",
            })
        );
    }

    #[test]
    fn short_values_are_masked_whole() {
        assert_eq!(mask_id_number("12345"), "*****");
        assert_eq!(mask_account("123"), "***");
        assert_eq!(mask_name(""), "");
    }
}
