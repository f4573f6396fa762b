//! The pure half of dispatching: what an outbox payload asks for, read without IO.
//!
//! Everything here is decided from the typed effect, the instance row and `now`, so it is
//! tested with tables; the dispatcher only does the IO these decisions call for.

use jiuzhu_engine::effects::TypedEffect;
use jiuzhu_engine::effects::schema;
use jiuzhu_engine::effects::typed::{Escalation, Notification};
use jiuzhu_engine::lang::model::EffectKind;
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
    /// `start_process` and `message`: carried out by the engine itself.
    Internal,
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
    /// The route for an outbox row's `kind` (the payload's `type`), one per effect kind
    /// of the engine's schema.
    pub fn of(kind: &str) -> Result<Route, RouteError> {
        // A batch run is the node's own request, not an effect a definition may emit.
        if kind == EffectKind::Batch.as_str() {
            return Ok(Route::Batch);
        }
        let schema =
            schema::by_name(kind).ok_or_else(|| RouteError::UnknownType(kind.to_string()))?;
        Ok(match schema.kind {
            EffectKind::Notification => Route::Notification,
            EffectKind::Escalation => Route::Escalation,
            EffectKind::Payment | EffectKind::PaymentStop => Route::Payment,
            EffectKind::StartProcess | EffectKind::Message => Route::Internal,
            EffectKind::Batch => Route::Batch,
        })
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
/// with the `escalation` template unless the effect names another, its reason and
/// template variables kept. The effect id stays with the caller, so the deliveries keep
/// their keys (`<effect id>:<channel>`).
pub fn escalation_notice(escalation: &Escalation) -> Notification {
    let mut vars = escalation.vars.clone();
    if let Some(reason) = &escalation.reason {
        vars.insert("reason".into(), Value::Str(reason.clone()));
    }
    Notification {
        template: escalation
            .template
            .clone()
            .unwrap_or_else(|| ESCALATION_TEMPLATE.to_string()),
        to: None,
        to_role: Some(escalation.to_role.clone()),
        to_user: None,
        to_department: None,
        vars,
    }
}

impl Route {
    /// The route of a typed effect.
    pub fn of_effect(effect: &TypedEffect) -> Route {
        match effect {
            TypedEffect::Notification(_) => Route::Notification,
            TypedEffect::Escalation(_) => Route::Escalation,
            TypedEffect::Payment(_) | TypedEffect::PaymentStop(_) => Route::Payment,
            TypedEffect::StartProcess(_) | TypedEffect::Message(_) => Route::Internal,
            TypedEffect::Batch(_) => Route::Batch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use jiuzhu_engine::effects::Outward;
    use jiuzhu_engine::effects::typed::Names;
    use serde_json::json;

    #[test]
    fn every_effect_type_has_one_route() {
        let table = [
            ("notification", Ok(Route::Notification)),
            ("escalation", Ok(Route::Escalation)),
            ("payment", Ok(Route::Payment)),
            ("payment_stop", Ok(Route::Payment)),
            ("start_process", Ok(Route::Internal)),
            ("message", Ok(Route::Internal)),
            ("batch", Ok(Route::Batch)),
            ("fax", Err(RouteError::UnknownType("fax".into()))),
        ];
        for (kind, expected) in table {
            assert_eq!(Route::of(kind), expected, "{kind}");
        }
    }

    #[test]
    fn escalations_become_notifications_to_their_role() {
        let effect = json!({
            "type": "escalation", "id": "dibao-1-e4", "instance": "dibao-1",
            "to_role": "county_staff", "reason": "超过办理时限", "task": "approve"
        });
        let typed = Outward::from_json(&effect, None).expect("reads");
        assert_eq!(Route::of_effect(&typed.effect), Route::Escalation);
        let TypedEffect::Escalation(escalation) = &typed.effect else {
            panic!("an escalation: {typed:?}");
        };
        let notice = escalation_notice(escalation);
        assert_eq!(notice.template, ESCALATION_TEMPLATE);
        assert_eq!(notice.to_role, Some(Names::One("county_staff".into())));
        assert_eq!(
            notice.vars.get("reason"),
            Some(&Value::Str("超过办理时限".into()))
        );
        assert_eq!(notice.vars.get("task"), Some(&Value::Str("approve".into())));
        let own = Outward::from_json(
            &json!({"type": "escalation", "id": "x", "to_role": "county_staff", "template": "urgent"}),
            None,
        )
        .expect("reads");
        let TypedEffect::Escalation(own) = &own.effect else {
            panic!("an escalation");
        };
        assert_eq!(escalation_notice(own).template, "urgent");
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
}
