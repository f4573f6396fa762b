//! The effects the engine carries out itself, after commit, from the outbox:
//! `start_process` (a new case, at once or on its `at` date, with optional `reply` and
//! `on_end` messages to the starting case) and `message` (a named message to another
//! case, by its id or by process and business key).
//!
//! The outbox dispatcher claims these entries like any other and hands them to
//! [`Engine::deliver_internal`]; its leases, retries and incidents apply unchanged.
//! Delivery is at least once and idempotent per effect id:
//!
//! - a started case's id is derived from the effect id ([`started_instance_id`]), so a
//!   second delivery finds it (or collides with it) instead of starting a second case;
//! - a delivered message's effect id is kept in the target case's state (and its history
//!   row), and a state that has it refuses the message again: a redelivery after a crash
//!   between the target's step and the acknowledgement does nothing. The check and the
//!   record ride on the target's version check, so two deliveries racing cannot both land;
//! - `reply` is a message to the parent with its own delivery id (`EFFECT:reply`): the
//!   child `started`, was refused as a `duplicate` (naming the active case) or was
//!   `refused` otherwise (its data at the door, a unit), with the refusal's `code`, so the
//!   parent can branch on it. Without `reply` a refused start is an incident.
//!
//! Messages are delivered as the user `system` with the one role [`SYSTEM_ROLE`]: a
//! handler without `roles:` takes them; a handler with `roles:` takes them only when it
//! lists `system`.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use jiuzhu_rules::Value;
use serde_json::Value as Json;

use super::{Engine, EngineError, Event, Step};
use crate::core::{Actor, ParentLink, Status};
use crate::effects::typed::{self, Outward, TypedEffect};
use crate::store::{ConflictReason, StoreError};

/// The user engine-delivered messages and engine-started cases record.
pub const SYSTEM_USER: &str = "system";
/// The role of an engine-delivered message; a handler with `roles:` lists it to accept one.
pub const SYSTEM_ROLE: &str = crate::lang::model::SYSTEM_ROLE;
/// The role a case started by another's `start_process` is started with.
pub const STARTER_ROLE: &str = "admin";

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum InternalOutcome {
    Done,
    /// Not due yet: back in the outbox until then, without an attempt counted.
    NotBefore(DateTime<Utc>),
    /// `retryable`: a passing failure (the database); else waiting will not help and the
    /// entry becomes an incident at once.
    Failed {
        error: String,
        retryable: bool,
    },
}

impl InternalOutcome {
    fn permanent(error: impl Into<String>) -> Self {
        InternalOutcome::Failed {
            error: error.into(),
            retryable: false,
        }
    }
}

/// Why an internal effect cannot be carried out as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} effect: `{field}` must be {expected}")]
pub struct Malformed {
    pub kind: &'static str,
    pub field: &'static str,
    pub expected: &'static str,
}

/// A `start_process` effect, read.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub process: String,
    pub data: BTreeMap<String, Value>,
    /// The date or instant to start at; `None` starts at once.
    pub at: Option<StartAt>,
    /// Message the starting case is sent once the child started or was refused.
    pub reply: Option<String>,
    /// Message the starting case is sent when the child ends.
    pub on_end: Option<String>,
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

fn text_field(
    effect: &Json,
    kind: &'static str,
    field: &'static str,
    expected: &'static str,
) -> Result<Option<String>, Malformed> {
    match effect.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(Malformed {
            kind,
            field,
            expected,
        }),
    }
}

fn data_field(effect: &Json, kind: &'static str) -> Result<BTreeMap<String, Value>, Malformed> {
    match effect.get("data") {
        None | Some(Json::Null) => Ok(BTreeMap::new()),
        Some(object @ Json::Object(_)) => match Value::from_json(object) {
            Value::Object(map) => Ok(map),
            _ => Ok(BTreeMap::new()),
        },
        Some(_) => Err(Malformed {
            kind,
            field: "data",
            expected: "an object",
        }),
    }
}

impl StartRequest {
    pub fn parse(effect: &Json) -> Result<StartRequest, Malformed> {
        const KIND: &str = "start_process";
        let process = text_field(effect, KIND, "process", "the id of a deployed process")?.ok_or(
            Malformed {
                kind: KIND,
                field: "process",
                expected: "the id of a deployed process",
            },
        )?;
        let at_expected = "a date YYYY-MM-DD or an RFC 3339 date and time";
        let at = match text_field(effect, KIND, "at", at_expected)? {
            None => None,
            Some(text) => Some(parse_at(&text).ok_or(Malformed {
                kind: KIND,
                field: "at",
                expected: at_expected,
            })?),
        };
        Ok(StartRequest {
            process,
            data: data_field(effect, KIND)?,
            at,
            reply: text_field(effect, KIND, "reply", "a message name")?,
            on_end: text_field(effect, KIND, "on_end", "a message name")?,
        })
    }
}

impl StartRequest {
    /// The request of a typed `start_process` effect (read by `effects::parse_outbox`).
    pub fn from_typed(effect: &typed::StartProcess) -> StartRequest {
        StartRequest {
            process: effect.process.clone(),
            data: effect.data.clone(),
            at: effect.at.map(|at| match at {
                typed::StartAt::Date(date) => StartAt::Date(date),
                typed::StartAt::Instant(at) => StartAt::Instant(at.with_timezone(&Utc)),
            }),
            reply: effect.reply.clone(),
            on_end: effect.on_end.clone(),
        }
    }
}

impl MessageRequest {
    /// The request of a typed `message` effect: to a case by id, or by process and key.
    pub fn from_typed(effect: &typed::Message) -> Result<MessageRequest, Malformed> {
        let target = match (&effect.case, &effect.process, &effect.key) {
            (Some(case), None, None) => MessageTarget::Case(case.clone()),
            (None, Some(process), Some(key)) => MessageTarget::Keyed {
                process: process.clone(),
                key: key.clone(),
            },
            _ => {
                return Err(Malformed {
                    kind: "message",
                    field: "case",
                    expected: "an instance id, or else `process` and `key` must both be given",
                });
            }
        };
        Ok(MessageRequest {
            name: effect.name.clone(),
            target,
            data: effect.data.clone(),
        })
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

/// Which case a `message` effect goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageTarget {
    Case(String),
    /// The active case of `process` holding business key `key`.
    Keyed {
        process: String,
        key: String,
    },
}

/// A `message` effect, read.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRequest {
    pub name: String,
    pub target: MessageTarget,
    pub data: BTreeMap<String, Value>,
}

impl MessageRequest {
    pub fn parse(effect: &Json) -> Result<MessageRequest, Malformed> {
        const KIND: &str = "message";
        let missing = |field, expected| Malformed {
            kind: KIND,
            field,
            expected,
        };
        let name = text_field(effect, KIND, "name", "a message name")?
            .ok_or(missing("name", "a message name"))?;
        let case = text_field(effect, KIND, "case", "an instance id")?;
        let process = text_field(effect, KIND, "process", "a process id")?;
        let key = text_field(effect, KIND, "key", "a business key")?;
        let target = match (case, process, key) {
            (Some(case), None, None) => MessageTarget::Case(case),
            (None, Some(process), Some(key)) => MessageTarget::Keyed { process, key },
            _ => {
                return Err(missing(
                    "case",
                    "an instance id, or else `process` and `key` must both be given",
                ));
            }
        };
        Ok(MessageRequest {
            name,
            target,
            data: data_field(effect, KIND)?,
        })
    }
}

/// An engine error as the sender's outbox sees it: a lost race or a database that failed
/// is tried again; anything else (refused, unknown, invalid) is an incident at once.
fn failed(error: &EngineError) -> InternalOutcome {
    let retryable = match error {
        EngineError::Conflict { .. } => true,
        EngineError::Store(store) => matches!(
            store,
            StoreError::Conflict { .. }
                | StoreError::Locked { .. }
                | StoreError::Unreachable { .. }
                | StoreError::Full { .. }
                | StoreError::Database(_)
        ),
        _ => false,
    };
    InternalOutcome::Failed {
        error: error.to_string(),
        retryable,
    }
}

impl Engine {
    /// Carries out an internal outbox entry (`start_process` or `message`) of case
    /// `instance_id`, as of `now`.
    pub async fn deliver_internal(
        &self,
        effect_id: &str,
        instance_id: &str,
        kind: &str,
        effect: &Json,
        now: DateTime<Utc>,
    ) -> InternalOutcome {
        match kind {
            "start_process" => match StartRequest::parse(effect) {
                Ok(request) => {
                    self.start_child(effect_id, instance_id, request, None, now)
                        .await
                }
                Err(error) => InternalOutcome::permanent(error.to_string()),
            },
            "message" => match MessageRequest::parse(effect) {
                Ok(request) => {
                    let target = match self.resolve_target(&request.target).await {
                        Ok(target) => target,
                        Err(outcome) => return outcome,
                    };
                    self.deliver_message(&target, &request.name, request.data, effect_id)
                        .await
                }
                Err(error) => InternalOutcome::permanent(error.to_string()),
            },
            other => InternalOutcome::permanent(format!("`{other}` is not an engine effect")),
        }
    }

    /// Carries out a typed internal effect (`start_process` or `message`), as read from its
    /// outbox row by `effects::parse_outbox`.
    /// `emitted_at` is when the step that queued it committed (the outbox row's time): a
    /// start deferred to a later date is cancelled when its case ended in a later step.
    pub async fn deliver_outward(
        &self,
        effect: &Outward,
        emitted_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> InternalOutcome {
        match &effect.effect {
            TypedEffect::StartProcess(start) => {
                let request = StartRequest::from_typed(start);
                self.start_child(&effect.id, &effect.instance, request, Some(emitted_at), now)
                    .await
            }
            TypedEffect::Message(message) => match MessageRequest::from_typed(message) {
                Ok(request) => {
                    let target = match self.resolve_target(&request.target).await {
                        Ok(target) => target,
                        Err(outcome) => return outcome,
                    };
                    self.deliver_message(&target, &request.name, request.data, &effect.id)
                        .await
                }
                Err(error) => InternalOutcome::permanent(error.to_string()),
            },
            other => InternalOutcome::permanent(format!(
                "`{}` is not an engine effect",
                other.kind().as_str()
            )),
        }
    }

    /// The instance id a message goes to.
    async fn resolve_target(&self, target: &MessageTarget) -> Result<String, InternalOutcome> {
        match target {
            MessageTarget::Case(case) => Ok(case.clone()),
            MessageTarget::Keyed { process, key } => {
                match self.store.key_holder(process, key).await {
                    Ok(Some(case)) => Ok(case),
                    // The key is not named: it is often an ID number.
                    Ok(None) => Err(InternalOutcome::permanent(format!(
                        "no active {process} case has the business key this message names"
                    ))),
                    Err(error) => Err(InternalOutcome::Failed {
                        error: error.to_string(),
                        retryable: true,
                    }),
                }
            }
        }
    }

    /// Delivers message `name` to case `target` once: a case that has already taken
    /// `delivery` is left alone. An unknown or ended target is a permanent failure.
    pub async fn deliver_message(
        &self,
        target: &str,
        name: &str,
        data: BTreeMap<String, Value>,
        delivery: &str,
    ) -> InternalOutcome {
        self.deliver_message_here(target, name, data, delivery)
            .await
            .0
    }

    /// [`Engine::deliver_message`], and whether this call took the message (false when the
    /// case had it already: a redelivery, or another node delivering at the same time).
    pub(crate) async fn deliver_message_here(
        &self,
        target: &str,
        name: &str,
        data: BTreeMap<String, Value>,
        delivery: &str,
    ) -> (InternalOutcome, bool) {
        let row = match self.store.load_instance(target).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                return (
                    InternalOutcome::permanent(format!(
                        "message {name}: case {target} does not exist"
                    )),
                    false,
                );
            }
            Err(error) => {
                return (
                    InternalOutcome::Failed {
                        error: error.to_string(),
                        retryable: true,
                    },
                    false,
                );
            }
        };
        if row.status != Status::Active.as_str() {
            // Taken before the case ended? Then this is a redelivery, and done.
            if let Ok((_, _, state)) = self.load(target).await
                && state.received.iter().any(|r| r == delivery)
            {
                return (InternalOutcome::Done, false);
            }
            return (
                InternalOutcome::permanent(format!(
                    "message {name}: case {target} has ended ({})",
                    row.status
                )),
                false,
            );
        }
        if let Err(error) = self.check_input(&data) {
            return (InternalOutcome::permanent(error.to_string()), false);
        }
        let actor = Actor {
            user: SYSTEM_USER.to_string(),
            roles: vec![SYSTEM_ROLE.to_string()],
            unit: row.unit.clone(),
        };
        let event = Event::Message {
            name: name.to_string(),
            actor: Some(actor.clone()),
            data: data.clone(),
        };
        let kind = format!("message:{name}");
        let step = Step {
            event: &event,
            kind: &kind,
            actor: Some(&actor),
            data: &data,
            fired_timer: None,
            completes: None,
            on_behalf_of: None,
            delivery: Some(delivery),
        };
        match self.apply(target, step).await {
            Ok(_) => (InternalOutcome::Done, true),
            Err(EngineError::AlreadyReceived { .. }) => (InternalOutcome::Done, false),
            Err(error) => (failed(&error), false),
        }
    }

    /// Starts the child case of a `start_process` effect once, as the system user in the
    /// parent's unit, then tells the parent (`reply`) when asked to. A start deferred to a
    /// later date (a review scheduled at the decision) is cancelled when the case that
    /// asked for it ended in a later step than the one that asked (withdrawn, stopped by
    /// a review): nothing is left to review. `emitted_at` is when that step committed.
    async fn start_child(
        &self,
        effect_id: &str,
        parent_id: &str,
        request: StartRequest,
        emitted_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> InternalOutcome {
        let retry = |error: StoreError| InternalOutcome::Failed {
            error: error.to_string(),
            retryable: true,
        };
        let deployment = match self.store.latest_deployment(&request.process).await {
            Ok(Some(deployment)) => deployment,
            Ok(None) => {
                return InternalOutcome::permanent(format!(
                    "process {} is not deployed",
                    request.process
                ));
            }
            Err(error) => return retry(error),
        };
        if let Some(at) = request.at {
            let definition = match self.definition(&request.process, deployment.version).await {
                Ok(definition) => definition,
                Err(error) => return failed(&error),
            };
            let due = at.instant(self.utc_offset(&definition));
            if due > now {
                return InternalOutcome::NotBefore(due);
            }
        }
        let child = started_instance_id(&request.process, effect_id);
        if let (Some(_), Some(emitted_at)) = (request.at, emitted_at) {
            match self.store.load_instance(parent_id).await {
                Ok(Some(parent))
                    if parent.status != Status::Active.as_str()
                        && parent.updated_at > emitted_at =>
                {
                    match self.store.load_instance(&child).await {
                        Ok(None) => {
                            tracing::info!(
                                effect = effect_id,
                                process = %request.process,
                                "deferred start cancelled: its case ended after asking for it"
                            );
                            return InternalOutcome::Done;
                        }
                        Ok(Some(_)) => {}
                        Err(error) => return retry(error),
                    }
                }
                Ok(_) => {}
                Err(error) => return retry(error),
            }
        }
        let started = match self.store.load_instance(&child).await {
            // Started by an earlier attempt whose acknowledgement (or reply) was lost.
            Ok(Some(_)) => Ok(child.clone()),
            Ok(None) => {
                let parent = match self.store.load_instance(parent_id).await {
                    Ok(Some(parent)) => parent,
                    Ok(None) => {
                        return InternalOutcome::permanent(format!(
                            "instance {parent_id} not found"
                        ));
                    }
                    Err(error) => return retry(error),
                };
                let actor = Actor {
                    user: SYSTEM_USER.to_string(),
                    // The engine itself: a process's `started_by` always admits it.
                    roles: vec![STARTER_ROLE.to_string(), SYSTEM_ROLE.to_string()],
                    unit: parent.unit,
                };
                let link = ParentLink {
                    case: parent_id.to_string(),
                    on_end: request.on_end.clone(),
                };
                match self
                    .start_with_id(
                        &child,
                        &request.process,
                        deployment.version,
                        &actor,
                        request.data,
                        Some(link),
                    )
                    .await
                {
                    Ok(_) => Ok(child.clone()),
                    // Another node started it between the check above and this start.
                    Err(EngineError::Store(StoreError::Conflict {
                        reason: ConflictReason::Duplicate,
                        ..
                    })) => Ok(child.clone()),
                    // Refused by the child's procedure (a key taken, its data at the
                    // door, a unit): told to a parent that asked for a reply, else an
                    // incident. Anything else (the database, the definition) is not the
                    // child's answer and fails the delivery as usual.
                    Err(
                        error @ (EngineError::DuplicateKey { .. }
                        | EngineError::NoActiveBenefit { .. }
                        | EngineError::Step(_)),
                    ) => Err(error),
                    Err(error) => return failed(&error),
                }
            }
            Err(error) => return retry(error),
        };
        let (status, case, code) = match started {
            Ok(case) => ("started", Value::Str(case), Value::Null),
            Err(EngineError::DuplicateKey { case, .. }) if request.reply.is_some() => (
                "duplicate",
                Value::Str(case),
                Value::Str("duplicate".into()),
            ),
            Err(error) if request.reply.is_some() => {
                ("refused", Value::Null, Value::Str(error.code().into()))
            }
            Err(EngineError::DuplicateKey { process, case }) => {
                return InternalOutcome::permanent(format!(
                    "start_process refused: an active {process} case with the same business key exists: {case}"
                ));
            }
            Err(error) => return failed(&error),
        };
        let Some(reply) = request.reply else {
            return InternalOutcome::Done;
        };
        let data = BTreeMap::from([
            ("case".to_string(), case),
            ("process".to_string(), Value::Str(request.process.clone())),
            ("status".to_string(), Value::Str(status.to_string())),
            ("code".to_string(), code),
            ("outcome".to_string(), Value::Null),
        ]);
        let delivery = format!("{effect_id}:reply");
        self.deliver_message(parent_id, &reply, data, &delivery)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn start_requests_read_process_data_when_and_replies() {
        let effect = json!({
            "type": "start_process", "id": "dibao-1-e9", "process": "dibao_review",
            "at": "2026-09-01", "data": {"program": "dibao", "case": "dibao-1", "amount": 705.5},
            "reply": "review_started", "on_end": "review_ended"
        });
        let request = StartRequest::parse(&effect).unwrap();
        assert_eq!(request.process, "dibao_review");
        assert_eq!(
            request.at,
            Some(StartAt::Date(NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()))
        );
        assert_eq!(request.data["case"], Value::Str("dibao-1".into()));
        assert!(matches!(request.data["amount"], Value::Decimal(_)));
        assert_eq!(request.reply.as_deref(), Some("review_started"));
        assert_eq!(request.on_end.as_deref(), Some("review_ended"));

        let at_once = StartRequest::parse(&json!({"process": "dibao", "at": null})).unwrap();
        assert_eq!(at_once.at, None);
        assert_eq!(at_once.reply, None);
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
            (json!({"process": "p", "reply": 3}), "reply"),
        ];
        for (effect, field) in table {
            match StartRequest::parse(&effect) {
                Err(Malformed { field: f, .. }) => assert_eq!(f, field, "{effect}"),
                other => panic!("{effect}: {other:?}"),
            }
        }
    }

    #[test]
    fn messages_go_to_a_case_or_to_a_process_and_key() {
        let by_case = MessageRequest::parse(&json!({
            "name": "review_stopped", "case": "tekun-1", "data": {"reason": "收入超标"}
        }))
        .unwrap();
        assert_eq!(by_case.target, MessageTarget::Case("tekun-1".into()));
        assert_eq!(by_case.data["reason"], Value::Str("收入超标".into()));
        let by_key = MessageRequest::parse(&json!({
            "name": "review_stopped", "process": "tekun", "key": "230100196001011234"
        }))
        .unwrap();
        assert_eq!(
            by_key.target,
            MessageTarget::Keyed {
                process: "tekun".into(),
                key: "230100196001011234".into()
            }
        );
        let table = [
            (json!({"case": "c"}), "name"),
            (json!({"name": "m"}), "case"),
            (
                json!({"name": "m", "case": "c", "process": "p", "key": "k"}),
                "case",
            ),
            (json!({"name": "m", "process": "p"}), "case"),
            (json!({"name": "m", "case": "c", "data": "x"}), "data"),
        ];
        for (effect, field) in table {
            match MessageRequest::parse(&effect) {
                Err(Malformed { field: f, .. }) => assert_eq!(f, field, "{effect}"),
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
    fn started_instances_are_named_after_the_effect() {
        assert_eq!(
            started_instance_id("dibao_review", "dibao-1-e9"),
            "dibao_review-dibao-1-e9"
        );
    }
}
