//! The templates (embedded in the binary, parsed once) and the helpers they use: money as
//! `¥1,234.00` from a decimal, times in local time (Asia/Shanghai, UTC+8 all year), and
//! the engine's masks for names, ID numbers and bank accounts.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use tera::{Context, Tera, Value};

/// Every template, by name, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("queue.html", include_str!("../../templates/queue.html")),
    ("task.html", include_str!("../../templates/task.html")),
    ("case.html", include_str!("../../templates/case.html")),
    ("cases.html", include_str!("../../templates/cases.html")),
    (
        "new_case.html",
        include_str!("../../templates/new_case.html"),
    ),
];

/// Extra templates other modules register (kept in one list per module so files that
/// several people extend do not all touch this one).
fn all_templates() -> Vec<(&'static str, &'static str)> {
    let mut all = TEMPLATES.to_vec();
    all.extend_from_slice(super::print::TEMPLATES);
    all.extend_from_slice(super::progress::TEMPLATES);
    all.extend_from_slice(super::admin::TEMPLATES);
    all
}

static TERA: LazyLock<Result<Tera, String>> = LazyLock::new(|| {
    let mut tera = Tera::default();
    tera.add_raw_templates(all_templates())
        .map_err(|e| error_chain(&e))?;
    tera.autoescape_on(vec![".html"]);
    tera.register_filter("money", money_filter);
    tera.register_filter("localtime", localtime_filter);
    tera.register_filter("localdate", localdate_filter);
    tera.register_filter("mask_name", mask_filter(jiuzhu_engine::privacy::mask_name));
    tera.register_filter(
        "mask_id",
        mask_filter(jiuzhu_engine::privacy::mask_id_number),
    );
    tera.register_filter(
        "mask_account",
        mask_filter(jiuzhu_engine::privacy::mask_account),
    );
    Ok(tera)
});

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Renders template `name` with `context`.
pub fn render(name: &str, context: &Context) -> Result<String, tera::Error> {
    match &*TERA {
        Ok(tera) => tera.render(name, context),
        Err(message) => Err(tera::Error::msg(format!("templates: {message}"))),
    }
}

/// HTML-escapes text (for the last-resort error page only; templates autoescape).
pub fn escape(text: &str) -> String {
    tera::escape_html(text)
}

/// China's offset: UTC+8 all year (no daylight saving time).
pub fn local_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero"))
}

/// `2026-03-02 09:00` in local time.
pub fn local_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&local_offset())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// `¥1,234.00`: two decimals (half away from zero), thousands separated.
pub fn money(amount: Decimal) -> String {
    let rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{:.2}", rounded.abs());
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{sign}¥{grouped}.{cents}")
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn money_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    match as_text(value).and_then(|t| Decimal::from_str(t.trim()).ok()) {
        Some(amount) => Ok(Value::String(money(amount))),
        None if value.is_null() => Ok(Value::String("—".into())),
        None => Ok(Value::String(as_text(value).unwrap_or_default())),
    }
}

fn localtime_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let text = as_text(value).unwrap_or_default();
    Ok(Value::String(
        match DateTime::parse_from_rfc3339(text.trim()) {
            Ok(at) => local_time(at.with_timezone(&Utc)),
            Err(_) if value.is_null() => "—".into(),
            Err(_) => text,
        },
    ))
}

fn localdate_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let text = as_text(value).unwrap_or_default();
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Value::String(
            at.with_timezone(&local_offset())
                .format("%Y-%m-%d")
                .to_string(),
        ));
    }
    Ok(Value::String(match NaiveDate::from_str(text) {
        Ok(date) => date.format("%Y-%m-%d").to_string(),
        Err(_) if value.is_null() => "—".into(),
        Err(_) => text.to_string(),
    }))
}

type Filter = Box<dyn Fn(&Value, &HashMap<String, Value>) -> tera::Result<Value> + Send + Sync>;

fn mask_filter(mask: fn(&str) -> String) -> Filter {
    Box::new(move |value, _| {
        Ok(Value::String(match as_text(value) {
            Some(text) => mask(&text),
            None => String::new(),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn money_has_a_yuan_sign_two_decimals_and_thousands() {
        let d = |s: &str| Decimal::from_str(s).expect("decimal");
        assert_eq!(money(d("1234")), "¥1,234.00");
        assert_eq!(money(d("1234567.005")), "¥1,234,567.01");
        assert_eq!(money(d("0.5")), "¥0.50");
        assert_eq!(money(d("-12.3")), "-¥12.30");
        assert_eq!(money(d("100")), "¥100.00");
    }

    #[test]
    fn times_are_shown_in_china_time() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 17, 30, 0)
            .single()
            .expect("time");
        assert_eq!(local_time(at), "2026-03-02 01:30");
    }

    #[test]
    fn every_template_parses() {
        let tera = TERA.as_ref().expect("templates parse");
        for (name, _) in all_templates() {
            assert!(tera.get_template_names().any(|n| n == name), "{name}");
        }
    }
}
