//! Incidents: the outbox entries the dispatcher gave up on, as an operator reads them
//! (`jiuzhu incidents`), with what to do next (`jiuzhu retry ID`).

use chrono::{DateTime, Utc};
use jiuzhu_engine::store::OutboxEntry;
use serde::Serialize;
use serde_json::Value as Json;

/// One dead outbox entry, for a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// The effect id: what `jiuzhu retry` takes.
    pub id: String,
    pub instance_id: String,
    /// The effect type (`notification`, `payment` …).
    pub kind: String,
    /// What the effect asked for, in a few words.
    pub summary: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When the step that emitted the effect was committed.
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the dispatcher gave up.
    pub given_up_at: DateTime<Utc>,
    /// The effect as the engine emitted it.
    pub effect: Json,
}

impl From<&OutboxEntry> for Incident {
    fn from(entry: &OutboxEntry) -> Incident {
        Incident {
            id: entry.entry.id.clone(),
            instance_id: entry.entry.instance_id.clone(),
            kind: entry.entry.kind.clone(),
            summary: summary(&entry.entry.payload),
            attempts: entry.attempts,
            last_error: entry.last_error.clone(),
            created_at: entry.entry.created_at,
            last_attempt_at: entry.last_attempt_at,
            given_up_at: entry.available_at,
            effect: entry.entry.payload.clone(),
        }
    }
}

/// `template dibao_approved to applicant`, `payment 705.00 dibao monthly`,
/// `start dibao_review at 2026-09-01` …: the fields that tell effects apart.
pub fn summary(effect: &Json) -> String {
    let field = |name: &str| -> Option<String> {
        match effect.get(name)? {
            Json::Null => None,
            Json::String(text) => Some(text.clone()),
            Json::Array(items) => Some(
                items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_string)
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            other => Some(other.to_string()),
        }
    };
    let labelled = [
        ("template", "template"),
        ("to", "to"),
        ("to_role", "to"),
        ("to_user", "to"),
        ("process", "start"),
        ("at", "at"),
        ("amount", "amount"),
        ("purpose", "purpose"),
        ("schedule", "schedule"),
        ("from", "from"),
        ("reason", "reason"),
    ];
    labelled
        .iter()
        .filter_map(|(name, label)| field(name).map(|value| format!("{label} {value}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn at(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The incidents as text, one block each, oldest first; a line saying so when there are none.
pub fn render_text(incidents: &[Incident]) -> String {
    if incidents.is_empty() {
        return "no incidents: every effect was delivered or is still being tried\n".to_string();
    }
    let mut text = String::new();
    for incident in incidents {
        text.push_str(&format!(
            "{}  {}  instance {}\n",
            incident.id, incident.kind, incident.instance_id
        ));
        if !incident.summary.is_empty() {
            text.push_str(&format!("  {}\n", incident.summary));
        }
        let last = incident
            .last_attempt_at
            .map_or_else(String::new, |t| format!(", last attempt {}", at(t)));
        text.push_str(&format!(
            "  emitted {}, {} attempt{}{}, given up {}\n",
            at(incident.created_at),
            incident.attempts,
            if incident.attempts == 1 { "" } else { "s" },
            last,
            at(incident.given_up_at)
        ));
        text.push_str(&format!(
            "  last error: {}\n",
            incident.last_error.as_deref().unwrap_or("(none recorded)")
        ));
        text.push_str(&format!("  retry: jiuzhu retry {}\n", incident.id));
    }
    text.push_str(&format!(
        "{} incident{}\n",
        incidents.len(),
        if incidents.len() == 1 { "" } else { "s" }
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use jiuzhu_engine::store::{OutboxRow, OutboxStatus};
    use serde_json::json;

    fn dead(payload: Json) -> OutboxEntry {
        let t = |m| Utc.with_ymd_and_hms(2026, 3, 2, 1, m, 0).unwrap();
        OutboxEntry {
            entry: OutboxRow {
                id: "dibao-1-e17".into(),
                instance_id: "dibao-1".into(),
                kind: "notification".into(),
                payload,
                created_at: t(0),
            },
            status: OutboxStatus::Dead,
            attempts: 3,
            last_error: Some("dibao-1-e17:webhook: webhook answered HTTP 500".into()),
            last_attempt_at: Some(t(7)),
            available_at: t(7),
            claimed_by: None,
            delivered_at: None,
        }
    }

    #[test]
    fn summaries_pick_the_fields_that_tell_effects_apart() {
        let table = [
            (
                json!({"type": "notification", "template": "dibao_approved", "to": "applicant", "monthly_amount": "705.00"}),
                "template dibao_approved, to applicant",
            ),
            (
                json!({"type": "notification", "template": "task_reminder", "to_role": ["township_staff", "county_staff"]}),
                "template task_reminder, to township_staff,county_staff",
            ),
            (
                json!({"type": "payment", "amount": "705.00", "purpose": "dibao", "schedule": "monthly", "from": "2026-04-01"}),
                "amount 705.00, purpose dibao, schedule monthly, from 2026-04-01",
            ),
            (
                json!({"type": "start_process", "process": "dibao_review", "at": "2026-09-01", "data": {}}),
                "start dibao_review, at 2026-09-01",
            ),
            (
                json!({"type": "escalation", "to_role": "county_staff", "reason": "超期"}),
                "to county_staff, reason 超期",
            ),
        ];
        for (effect, expected) in table {
            assert_eq!(summary(&effect), expected, "{effect}");
        }
    }

    #[test]
    fn the_text_shows_error_attempts_times_and_the_retry_command() {
        let incident = Incident::from(&dead(
            json!({"type": "notification", "template": "dibao_approved", "to": "applicant"}),
        ));
        assert_eq!(
            render_text(&[incident]),
            "dibao-1-e17  notification  instance dibao-1\n\
             \x20 template dibao_approved, to applicant\n\
             \x20 emitted 2026-03-02 01:00:00 UTC, 3 attempts, last attempt 2026-03-02 01:07:00 UTC, given up 2026-03-02 01:07:00 UTC\n\
             \x20 last error: dibao-1-e17:webhook: webhook answered HTTP 500\n\
             \x20 retry: jiuzhu retry dibao-1-e17\n\
             1 incident\n"
        );
        assert!(render_text(&[]).starts_with("no incidents"));
    }
}
