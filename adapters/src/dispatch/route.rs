//! The pure half of dispatching: what an outbox payload asks for, read without IO.
//!
//! Everything here is decided from the effect JSON, the instance row and `now`, so it is
//! tested with tables; the dispatcher only does the IO these decisions call for.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use jiuzhu_engine::store::InstanceRow;
use jiuzhu_rules::Value;
use serde_json::Value as Json;

/// The template an escalation is mailed with when the effect names none.
pub const ESCALATION_TEMPLATE: &str = "escalation";

/// Which adapter an effect goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Notification,
    Escalation,
    Payment,
    StartProcess,
    /// A batch node's run over the recipients: the payments ledger carries it out.
    Batch,
}

/// Why an effect cannot be delivered as written. Waiting will not fix any of these: the
/// effect becomes an incident at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("unknown effect type `{0}`")]
    UnknownType(String),
    #[error("{kind} effect: `{field}` must be {expected}")]
    Malformed {
        kind: &'static str,
        field: &'static str,
        expected: &'static str,
    },
}

impl Route {
    /// The route for an outbox row's `kind` (the payload's `type`).
    pub fn of(kind: &str) -> Result<Route, RouteError> {
        match kind {
            "notification" => Ok(Route::Notification),
            "escalation" => Ok(Route::Escalation),
            "payment" | "payment_stop" => Ok(Route::Payment),
            "start_process" => Ok(Route::StartProcess),
            "batch" => Ok(Route::Batch),
            other => Err(RouteError::UnknownType(other.to_string())),
        }
    }
}

/// The variables a notification template sees besides the effect's own fields: the
/// instance's variables, plus the case's `unit` and `process` (the unit of the row is the
/// case's own, so it wins over a variable of that name).
pub fn instance_vars(row: &InstanceRow) -> Json {
    /// The one field of the stored state read here; a state without variables has none.
    #[derive(serde::Deserialize)]
    struct WithVars {
        vars: serde_json::Map<String, Json>,
    }
    let mut vars = row
        .state
        .parse::<WithVars>()
        .map(|state| state.vars)
        .unwrap_or_default();
    vars.insert("unit".into(), Json::String(row.unit.clone()));
    vars.entry("process")
        .or_insert_with(|| Json::String(row.process_id.clone()));
    Json::Object(vars)
}

/// An escalation as the notification that carries it: to `to_role` of the case's unit,
/// with the `escalation` template unless the effect names another. The effect id stays,
/// so the deliveries keep their keys (`<effect id>:<channel>`).
pub fn escalation_notice(effect: &Json) -> Json {
    let mut notice = match effect {
        Json::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    notice.insert("type".into(), Json::String("notification".into()));
    notice
        .entry("template")
        .or_insert_with(|| Json::String(ESCALATION_TEMPLATE.into()));
    Json::Object(notice)
}

/// A `start_process` effect, read.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub process: String,
    pub data: BTreeMap<String, Value>,
    /// The date or instant to start at; `None` starts at once.
    pub at: Option<StartAt>,
}

/// When a process is to be started: a local date (its first moment in the process's
/// calendar) or an exact instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

impl StartAt {
    /// The instant it stands for, local dates read in `offset`.
    pub fn instant(self, offset: FixedOffset) -> DateTime<Utc> {
        match self {
            StartAt::Instant(at) => at,
            StartAt::Date(date) => {
                let local = date.and_time(NaiveTime::MIN);
                // A fixed offset maps every local time to exactly one instant.
                match local.and_local_timezone(offset).single() {
                    Some(at) => at.with_timezone(&Utc),
                    None => local.and_utc(),
                }
            }
        }
    }
}

impl StartRequest {
    pub fn parse(effect: &Json) -> Result<StartRequest, RouteError> {
        let malformed = |field, expected| RouteError::Malformed {
            kind: "start_process",
            field,
            expected,
        };
        let process = effect
            .get("process")
            .and_then(Json::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| malformed("process", "the id of a deployed process"))?
            .to_string();
        let data = match effect.get("data") {
            None | Some(Json::Null) => BTreeMap::new(),
            Some(object @ Json::Object(_)) => match Value::from_json(object) {
                Value::Object(map) => map,
                _ => BTreeMap::new(),
            },
            Some(_) => return Err(malformed("data", "an object of start data")),
        };
        let at = match effect.get("at") {
            None | Some(Json::Null) => None,
            Some(Json::String(text)) => Some(parse_at(text).ok_or_else(|| {
                malformed("at", "a date YYYY-MM-DD or an RFC 3339 date and time")
            })?),
            Some(_) => {
                return Err(malformed(
                    "at",
                    "a date YYYY-MM-DD or an RFC 3339 date and time",
                ));
            }
        };
        Ok(StartRequest { process, data, at })
    }
}

fn parse_at(text: &str) -> Option<StartAt> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(StartAt::Date(date));
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| StartAt::Instant(at.with_timezone(&Utc)))
}

/// The id of the instance a `start_process` effect starts: derived from the effect id, so
/// a second delivery of the effect finds it (or collides with it) instead of starting a
/// second case.
pub fn started_instance_id(process: &str, effect_id: &str) -> String {
    format!("{process}-{effect_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn every_effect_type_has_one_route() {
        let table = [
            ("notification", Ok(Route::Notification)),
            ("escalation", Ok(Route::Escalation)),
            ("payment", Ok(Route::Payment)),
            ("payment_stop", Ok(Route::Payment)),
            ("start_process", Ok(Route::StartProcess)),
            ("batch", Ok(Route::Batch)),
            ("fax", Err(RouteError::UnknownType("fax".into()))),
        ];
        for (kind, expected) in table {
            assert_eq!(Route::of(kind), expected, "{kind}");
        }
    }

    #[test]
    fn start_requests_read_process_data_and_when() {
        let effect = json!({
            "type": "start_process", "id": "dibao-1-e9", "process": "dibao_review",
            "at": "2026-09-01", "data": {"program": "dibao", "case": "dibao-1", "amount": 705.5}
        });
        let request = StartRequest::parse(&effect).unwrap();
        assert_eq!(request.process, "dibao_review");
        assert_eq!(
            request.at,
            Some(StartAt::Date(NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()))
        );
        assert_eq!(request.data["case"], Value::Str("dibao-1".into()));
        assert!(matches!(request.data["amount"], Value::Decimal(_)));

        let at_once = StartRequest::parse(&json!({"process": "dibao", "at": null})).unwrap();
        assert_eq!(at_once.at, None);
        assert!(at_once.data.is_empty());

        let instant =
            StartRequest::parse(&json!({"process": "p", "at": "2026-09-01T08:30:00+08:00"}))
                .unwrap();
        assert_eq!(
            instant.at,
            Some(StartAt::Instant(
                Utc.with_ymd_and_hms(2026, 9, 1, 0, 30, 0).unwrap()
            ))
        );
    }

    #[test]
    fn malformed_start_requests_name_the_field() {
        let table = [
            (json!({"data": {}}), "process"),
            (json!({"process": ""}), "process"),
            (json!({"process": "p", "data": [1]}), "data"),
            (json!({"process": "p", "at": "next spring"}), "at"),
            (json!({"process": "p", "at": 20260901}), "at"),
        ];
        for (effect, field) in table {
            match StartRequest::parse(&effect) {
                Err(RouteError::Malformed { field: f, .. }) => assert_eq!(f, field, "{effect}"),
                other => panic!("{effect}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_local_date_starts_at_its_first_moment_in_the_calendar_zone() {
        let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
        let date = StartAt::Date(NaiveDate::from_ymd_opt(2026, 9, 1).unwrap());
        assert_eq!(
            date.instant(beijing),
            Utc.with_ymd_and_hms(2026, 8, 31, 16, 0, 0).unwrap()
        );
    }

    #[test]
    fn escalations_become_notifications_to_their_role() {
        let effect = json!({
            "type": "escalation", "id": "dibao-1-e4", "instance": "dibao-1",
            "to_role": "county_staff", "reason": "超过办理时限"
        });
        let notice = escalation_notice(&effect);
        assert_eq!(notice["type"], "notification");
        assert_eq!(notice["template"], ESCALATION_TEMPLATE);
        assert_eq!(notice["id"], "dibao-1-e4");
        assert_eq!(notice["to_role"], "county_staff");
        let own = escalation_notice(&json!({"type": "escalation", "template": "urgent"}));
        assert_eq!(own["template"], "urgent");
    }

    #[test]
    fn template_variables_are_the_instance_variables_with_unit_and_process() {
        let row = InstanceRow {
            id: "dibao-1".into(),
            process_id: "dibao".into(),
            process_version: 1,
            status: "active".into(),
            outcome: None,
            unit: "双鸭山市/尖山区/富安街道".into(),
            state: json!({"vars": {"applicant_name": "张桂兰", "unit": "stale"}}).into(),
            version: 1,
            created_at: Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap(),
            updated_at: Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap(),
        };
        assert_eq!(
            instance_vars(&row),
            json!({"applicant_name": "张桂兰", "unit": "双鸭山市/尖山区/富安街道", "process": "dibao"})
        );
    }

    #[test]
    fn started_instances_are_named_after_the_effect() {
        assert_eq!(
            started_instance_id("dibao_review", "dibao-1-e9"),
            "dibao_review-dibao-1-e9"
        );
    }
}
