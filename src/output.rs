//! How the commands print ids and times for people: short ids, local times in the
//! calendar's offset (+08:00 in China), and a note when personal data is shown unmasked.

use chrono::{DateTime, FixedOffset, TimeZone};

/// The hex part of generated ids (`dibao-<32 hex>`), and how much of it the short form keeps.
const UUID_HEX: usize = 32;
const SHORT_HEX: usize = 8;

/// The short form of an instance or task id: the last 8 hex digits of the case's id,
/// plus `-tN` for a task: `dibao-0190…f02d681b-t2` → `f02d681b-t2`. Every command taking
/// an id accepts it (or any unique beginning or ending of the full id). Ids of another
/// shape are returned whole.
pub fn short_id(id: &str) -> String {
    let (case, task) = match id.rsplit_once("-t") {
        Some((case, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            (case, Some(n))
        }
        _ => (id, None),
    };
    let Some((_, hex)) = case.rsplit_once('-') else {
        return id.to_string();
    };
    if hex.len() != UUID_HEX || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return id.to_string();
    }
    let short = &hex[UUID_HEX - SHORT_HEX..];
    match task {
        Some(n) => format!("{short}-t{n}"),
        None => short.to_string(),
    }
}

/// `2026-03-09 17:30` in `offset`.
pub fn local_minute<Tz: TimeZone>(at: &DateTime<Tz>, offset: FixedOffset) -> String {
    at.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// `2026-03-09 17:30:05 +08:00` in `offset`.
pub fn local_time<Tz: TimeZone>(at: &DateTime<Tz>, offset: FixedOffset) -> String {
    at.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// The line a view with unmasked personal data starts with.
pub const REVEALED: &str = "** personal data revealed (--reveal): handle as confidential; the server keeps an access log of such views **";

/// The line a masked view ends with.
pub const MASKED: &str = "(personal data masked; --reveal shows it)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_keep_the_last_eight_hex_digits() {
        assert_eq!(
            short_id("dibao-01a23ab2f7d477e88750f44cf02d681b"),
            "f02d681b"
        );
        assert_eq!(
            short_id("dibao-01a23ab2f7d477e88750f44cf02d681b-t13"),
            "f02d681b-t13"
        );
        assert_eq!(short_id("custom-id"), "custom-id");
        assert_eq!(short_id("x-t"), "x-t");
    }

    #[test]
    fn times_are_shown_in_the_offset() {
        let offset = FixedOffset::east_opt(8 * 3600).expect("offset");
        let at = DateTime::parse_from_rfc3339("2026-03-09T09:30:00Z").expect("time");
        assert_eq!(local_minute(&at, offset), "2026-03-09 17:30");
        assert_eq!(local_time(&at, offset), "2026-03-09 17:30:00 +08:00");
    }
}
