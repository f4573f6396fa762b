//! The typed form of an outward effect: a closed enum of one variant per kind, built
//! by the schema from the fields a step rendered, and read back from the outbox JSON
//! (`{"type": KIND, "id": …, "instance": …, fields…}`) by the dispatcher. The JSON keeps
//! the type, id and field names it always had, so rows queued by an older version still
//! read: fields an older definition carried that no schema declares are kept as given
//! (`extra`), and money and dates are read from numbers or from their text.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use jiuzhu_rules::Value;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::schema::{self, EffectSchema, FieldType};
use crate::lang::model::EffectKind;

/// An effect that does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypedError {
    #[error("unknown effect type `{0}`")]
    UnknownType(String),
    #[error("{kind} effect: `{field}` is missing")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
    #[error("{kind} effect: `{field}` must be {expected}")]
    Malformed {
        kind: &'static str,
        field: &'static str,
        expected: &'static str,
    },
    #[error("{kind} effect: no field `{field}`")]
    Unknown { kind: &'static str, field: String },
    #[error("the outbox row is of kind `{row}` but its effect says `{payload}`")]
    KindMismatch { row: String, payload: String },
    #[error("the outbox row's effect is not a JSON object")]
    NotAnObject,
}

impl TypedError {
    /// The field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            TypedError::UnknownType(_) | TypedError::NotAnObject => None,
            TypedError::KindMismatch { .. } => Some("type"),
            TypedError::Missing { field, .. } | TypedError::Malformed { field, .. } => Some(field),
            TypedError::Unknown { field, .. } => Some(field),
        }
    }
}

/// One name or several (roles, users).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Names::One(name) => vec![name.clone()],
            Names::Many(names) => names.clone(),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Names::One(name) => Value::Str(name.clone()),
            Names::Many(names) => Value::List(names.iter().cloned().map(Value::Str).collect()),
        }
    }
}

/// When a process is to be started: a date (its first moment in the process's
/// calendar) or an exact instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Date(NaiveDate),
    Instant(DateTime<FixedOffset>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub template: String,
    pub to: Option<String>,
    pub to_role: Option<Names>,
    pub to_user: Option<Names>,
    /// A department of the notification settings, reached by its own webhook.
    pub to_department: Option<String>,
    /// The template's variables the effect supplies.
    pub vars: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub amount: Decimal,
    pub purpose: String,
    /// `once` or `monthly`; `None` is once.
    pub schedule: Option<String>,
    pub from: Option<NaiveDate>,
    pub at: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub review_on: Option<NaiveDate>,
    pub installment: Option<i64>,
    pub installments: Option<i64>,
    pub payee: Option<String>,
    pub account: Option<String>,
    pub id_number: Option<String>,
    pub case: Option<String>,
    pub unit: Option<String>,
    pub reissue_of: Option<String>,
    /// Draw it from the township reserve and answer the case with this message.
    pub reserve_reply: Option<String>,
    /// Fields an older definition carried that the schema does not declare.
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentStop {
    pub purpose: String,
    pub from: Option<NaiveDate>,
    pub case: Option<String>,
    pub unit: Option<String>,
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StartProcess {
    pub process: String,
    pub at: Option<StartAt>,
    pub data: BTreeMap<String, Value>,
    /// The message the parent is sent once the child started or was refused.
    pub reply: Option<String>,
    /// The message the parent is sent when the child ends.
    pub on_end: Option<String>,
    pub extra: BTreeMap<String, Value>,
}

/// A message to another case: by its id, or by process and business key.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub name: String,
    pub case: Option<String>,
    pub process: Option<String>,
    pub key: Option<String>,
    pub data: BTreeMap<String, Value>,
    pub extra: BTreeMap<String, Value>,
}

/// A batch node's request for a run over the recipients. The node emits it itself; no
/// definition writes it under `emit`, so it has no schema of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRun {
    /// A second run under this key pays nobody twice.
    pub run_key: String,
    /// The node waiting for the run's report, whose `each` makes each recipient's effects.
    pub node: String,
    /// The query: `benefits`, `unit`, `as_of`, `per`.
    pub over: BTreeMap<String, Value>,
    /// The node's `once_per`: a recipient paid under this key by any run is skipped.
    pub once_per: Option<String>,
}

impl BatchRun {
    fn read(mut fields: BTreeMap<String, Value>) -> Result<BatchRun, TypedError> {
        let mut text = |name: &'static str| match fields.remove(name) {
            Some(Value::Str(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(TypedError::Malformed {
                kind: "batch",
                field: name,
                expected: "string",
            }),
            None => Err(TypedError::Missing {
                kind: "batch",
                field: name,
            }),
        };
        let run_key = text("run_key")?;
        let node = text("node")?;
        let once_per = match fields.remove("once_per") {
            None | Some(Value::Null) => None,
            Some(Value::Str(key)) if !key.is_empty() => Some(key),
            Some(_) => {
                return Err(TypedError::Malformed {
                    kind: "batch",
                    field: "once_per",
                    expected: "string",
                });
            }
        };
        let over = match fields.remove("over") {
            Some(Value::Object(map)) => map,
            None | Some(Value::Null) => BTreeMap::new(),
            Some(_) => {
                return Err(TypedError::Malformed {
                    kind: "batch",
                    field: "over",
                    expected: "object",
                });
            }
        };
        Ok(BatchRun {
            run_key,
            node,
            over,
            once_per,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub to_role: Names,
    pub reason: Option<String>,
    pub template: Option<String>,
    /// The escalation template's variables the effect supplies (`task`, `findings` …).
    pub vars: BTreeMap<String, Value>,
}

/// The closed set of outward effects, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedEffect {
    Notification(Notification),
    Payment(Payment),
    PaymentStop(PaymentStop),
    StartProcess(StartProcess),
    Escalation(Escalation),
    Message(Message),
    Batch(BatchRun),
}

/// An outward effect: its idempotency key, the case that emitted it, and what it asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Outward {
    /// Unique and stable: the idempotency key.
    pub id: String,
    pub instance: String,
    pub effect: TypedEffect,
}

impl Outward {
    pub fn kind(&self) -> EffectKind {
        self.effect.kind()
    }

    /// Builds the typed effect from the fields a step rendered (`instance` among them or
    /// given); a field of the wrong type is an error, a field no schema declares too
    /// (unless the kind carries template variables).
    pub fn from_fields(
        id: String,
        instance: String,
        kind: EffectKind,
        fields: BTreeMap<String, Value>,
    ) -> Result<Outward, TypedError> {
        Outward::from_fields_of(id, instance, kind, fields, false)
    }

    /// As [`Outward::from_fields`]; `lenient` keeps fields no schema declares (`extra`),
    /// for the effects of a stored version compiled before its kind's schema said so.
    pub fn from_fields_of(
        id: String,
        instance: String,
        kind: EffectKind,
        fields: BTreeMap<String, Value>,
        lenient: bool,
    ) -> Result<Outward, TypedError> {
        let mut fields = fields;
        let instance = match fields.remove("instance") {
            Some(Value::Str(given)) => given,
            _ => instance,
        };
        let effect = if kind == EffectKind::Batch {
            TypedEffect::Batch(BatchRun::read(fields)?)
        } else {
            TypedEffect::build(schema::schema(kind), fields, lenient)?
        };
        Ok(Outward {
            id,
            instance,
            effect,
        })
    }

    /// Reads an outbox payload; `default_instance` (the row's) when it names none.
    pub fn from_json(json: &Json, default_instance: Option<&str>) -> Result<Outward, TypedError> {
        let kind = json.get("type").and_then(Json::as_str).unwrap_or_default();
        if kind == EffectKind::Batch.as_str() {
            let mut fields = BTreeMap::new();
            if let Json::Object(map) = json {
                for (key, value) in map {
                    fields.insert(key.clone(), Value::from_json(value));
                }
            }
            let text = |name: &str| json.get(name).and_then(Json::as_str).map(str::to_string);
            fields.retain(|key, _| !matches!(key.as_str(), "type" | "id" | "instance"));
            return Ok(Outward {
                id: text("id").unwrap_or_default(),
                instance: text("instance")
                    .or(default_instance.map(str::to_string))
                    .unwrap_or_default(),
                effect: TypedEffect::Batch(BatchRun::read(fields)?),
            });
        }
        let schema =
            schema::by_name(kind).ok_or_else(|| TypedError::UnknownType(kind.to_string()))?;
        let name = schema.kind.as_str();
        let id = json
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let mut fields = BTreeMap::new();
        if let Json::Object(map) = json {
            for (key, value) in map {
                if matches!(key.as_str(), "type" | "id" | "instance") {
                    continue;
                }
                let value = match schema.field(key) {
                    Some(spec) => read_json(value, spec.ty).ok_or(TypedError::Malformed {
                        kind: name,
                        field: spec.name,
                        expected: spec.ty.name(),
                    })?,
                    None => Value::from_json(value),
                };
                fields.insert(key.clone(), value);
            }
        }
        let instance = json
            .get("instance")
            .and_then(Json::as_str)
            .or(default_instance)
            .unwrap_or_default()
            .to_string();
        let effect = TypedEffect::build(schema, fields, true)?;
        Ok(Outward {
            id,
            instance,
            effect,
        })
    }

    /// `{"type": "payment", "id": "…", "instance": "…", "amount": "1305.00", …}`.
    pub fn to_json(&self) -> Json {
        let mut map = serde_json::Map::new();
        map.insert("type".into(), self.kind().as_str().into());
        map.insert("id".into(), self.id.clone().into());
        map.insert("instance".into(), self.instance.clone().into());
        for (key, value) in self.effect.fields() {
            map.insert(key, value.to_json());
        }
        Json::Object(map)
    }
}

/// Reads an outbox row into its typed effect: the one way the adapters and the engine's
/// own deliveries read what a step queued. Lenient as [`Outward::from_json`] for rows an
/// older version queued (money as a number, fields no schema declares kept as given);
/// the row's kind, id and instance stand in for a payload that does not repeat them, and
/// a payload whose `type` contradicts the row's kind is refused.
pub fn parse_outbox(row: &crate::store::OutboxRow) -> Result<Outward, TypedError> {
    let Json::Object(map) = &row.payload else {
        return Err(TypedError::NotAnObject);
    };
    match map.get("type") {
        None | Some(Json::Null) => {}
        Some(Json::String(kind)) if kind == &row.kind => {}
        Some(other) => {
            return Err(TypedError::KindMismatch {
                row: row.kind.clone(),
                payload: other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_string),
            });
        }
    }
    let mut payload = map.clone();
    payload.insert("type".into(), Json::String(row.kind.clone()));
    if !matches!(payload.get("id"), Some(Json::String(id)) if !id.is_empty()) {
        payload.insert("id".into(), Json::String(row.id.clone()));
    }
    Outward::from_json(&Json::Object(payload), Some(&row.instance_id))
}

impl TypedEffect {
    pub fn kind(&self) -> EffectKind {
        match self {
            TypedEffect::Notification(_) => EffectKind::Notification,
            TypedEffect::Payment(_) => EffectKind::Payment,
            TypedEffect::PaymentStop(_) => EffectKind::PaymentStop,
            TypedEffect::StartProcess(_) => EffectKind::StartProcess,
            TypedEffect::Escalation(_) => EffectKind::Escalation,
            TypedEffect::Message(_) => EffectKind::Message,
            TypedEffect::Batch(_) => EffectKind::Batch,
        }
    }

    /// `lenient` keeps undeclared fields (`extra`) instead of refusing them: the reading
    /// of rows an older version queued.
    fn build(
        schema: &'static EffectSchema,
        fields: BTreeMap<String, Value>,
        lenient: bool,
    ) -> Result<TypedEffect, TypedError> {
        let mut r = Reader {
            schema,
            fields,
            lenient,
        };
        Ok(match schema.kind {
            EffectKind::Notification => TypedEffect::Notification(Notification {
                template: r.required_text("template")?,
                to: r.text("to")?,
                to_role: r.names("to_role")?,
                to_user: r.names("to_user")?,
                to_department: r.text("to_department")?,
                vars: r.rest()?,
            }),
            EffectKind::Payment => TypedEffect::Payment(Payment {
                amount: r.amount("amount")?,
                purpose: r.required_text("purpose")?,
                schedule: r.text("schedule")?,
                from: r.date("from")?,
                at: r.date("at")?,
                until: r.date("until")?,
                review_on: r.date("review_on")?,
                installment: r.count("installment")?,
                installments: r.count("installments")?,
                payee: r.text("payee")?,
                account: r.text("account")?,
                id_number: r.text("id_number")?,
                case: r.text("case")?,
                unit: r.text("unit")?,
                reissue_of: r.text("reissue_of")?,
                reserve_reply: r.text("reserve_reply")?,
                extra: r.rest()?,
            }),
            EffectKind::PaymentStop => TypedEffect::PaymentStop(PaymentStop {
                purpose: r.required_text("purpose")?,
                from: r.date("from")?,
                case: r.text("case")?,
                unit: r.text("unit")?,
                extra: r.rest()?,
            }),
            EffectKind::StartProcess => TypedEffect::StartProcess(StartProcess {
                process: r.required_text("process")?,
                at: r.start_at("at")?,
                data: r.object("data")?,
                reply: r.text("reply")?,
                on_end: r.text("on_end")?,
                extra: r.rest()?,
            }),
            EffectKind::Message => TypedEffect::Message(Message {
                name: r.required_text("name")?,
                case: r.text("case")?,
                process: r.text("process")?,
                key: r.text("key")?,
                data: r.object("data")?,
                extra: r.rest()?,
            }),
            // Built by `BatchRun::read`, never through a schema.
            EffectKind::Batch => return Err(TypedError::UnknownType("batch".to_string())),
            EffectKind::Escalation => {
                let to_role = r.names("to_role")?.ok_or_else(|| r.missing("to_role"))?;
                TypedEffect::Escalation(Escalation {
                    to_role,
                    reason: r.text("reason")?,
                    template: r.text("template")?,
                    vars: r.rest()?,
                })
            }
        })
    }

    /// The effect's fields by name, as the outbox JSON carries them.
    pub fn fields(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                out.insert(name.to_string(), value);
            }
        };
        let text = |v: &Option<String>| v.clone().map(Value::Str);
        let date = |v: &Option<NaiveDate>| v.map(Value::Date);
        let rest: &BTreeMap<String, Value> = match self {
            TypedEffect::Notification(n) => {
                put("template", Some(Value::Str(n.template.clone())));
                put("to", text(&n.to));
                put("to_role", n.to_role.as_ref().map(Names::to_value));
                put("to_user", n.to_user.as_ref().map(Names::to_value));
                put("to_department", text(&n.to_department));
                &n.vars
            }
            TypedEffect::Payment(p) => {
                put("amount", Some(Value::Decimal(p.amount)));
                put("purpose", Some(Value::Str(p.purpose.clone())));
                put("schedule", text(&p.schedule));
                put("from", date(&p.from));
                put("at", date(&p.at));
                put("until", date(&p.until));
                put("review_on", date(&p.review_on));
                put("installment", p.installment.map(Value::Int));
                put("installments", p.installments.map(Value::Int));
                put("payee", text(&p.payee));
                put("account", text(&p.account));
                put("id_number", text(&p.id_number));
                put("case", text(&p.case));
                put("unit", text(&p.unit));
                put("reissue_of", text(&p.reissue_of));
                put("reserve_reply", text(&p.reserve_reply));
                &p.extra
            }
            TypedEffect::PaymentStop(s) => {
                put("purpose", Some(Value::Str(s.purpose.clone())));
                put("from", date(&s.from));
                put("case", text(&s.case));
                put("unit", text(&s.unit));
                &s.extra
            }
            TypedEffect::StartProcess(s) => {
                put("process", Some(Value::Str(s.process.clone())));
                put(
                    "at",
                    s.at.map(|at| match at {
                        StartAt::Date(d) => Value::Date(d),
                        StartAt::Instant(t) => Value::DateTime(t),
                    }),
                );
                put("data", Some(Value::Object(s.data.clone())));
                put("reply", text(&s.reply));
                put("on_end", text(&s.on_end));
                &s.extra
            }
            TypedEffect::Batch(b) => {
                put("run_key", Some(Value::Str(b.run_key.clone())));
                put("node", Some(Value::Str(b.node.clone())));
                put("over", Some(Value::Object(b.over.clone())));
                put("once_per", b.once_per.clone().map(Value::Str));
                return out;
            }
            TypedEffect::Message(m) => {
                put("name", Some(Value::Str(m.name.clone())));
                put("case", text(&m.case));
                put("process", text(&m.process));
                put("key", text(&m.key));
                put("data", Some(Value::Object(m.data.clone())));
                &m.extra
            }
            TypedEffect::Escalation(e) => {
                put("to_role", Some(e.to_role.to_value()));
                put("reason", text(&e.reason));
                put("template", text(&e.template));
                &e.vars
            }
        };
        for (key, value) in rest {
            out.entry(key.clone()).or_insert_with(|| value.clone());
        }
        out
    }
}

/// Takes the declared fields out of a rendered map, checking each by its schema.
struct Reader {
    schema: &'static EffectSchema,
    fields: BTreeMap<String, Value>,
    lenient: bool,
}

impl Reader {
    fn spec_name(&self, name: &'static str) -> &'static str {
        self.schema.field(name).map_or(name, |f| f.name)
    }

    fn missing(&self, name: &'static str) -> TypedError {
        TypedError::Missing {
            kind: self.schema.kind.as_str(),
            field: self.spec_name(name),
        }
    }

    /// Present and not null, of the field's declared type.
    fn take(&mut self, name: &'static str) -> Result<Option<Value>, TypedError> {
        let Some(value) = self
            .fields
            .remove(name)
            .filter(|v| !matches!(v, Value::Null))
        else {
            return Ok(None);
        };
        let ty = self.schema.field(name).map_or(FieldType::Text, |f| f.ty);
        if ty.accepts_value(&value) {
            Ok(Some(value))
        } else {
            Err(TypedError::Malformed {
                kind: self.schema.kind.as_str(),
                field: self.spec_name(name),
                expected: ty.name(),
            })
        }
    }

    fn text(&mut self, name: &'static str) -> Result<Option<String>, TypedError> {
        Ok(match self.take(name)? {
            Some(Value::Str(s)) if !s.trim().is_empty() => Some(s),
            _ => None,
        })
    }

    fn required_text(&mut self, name: &'static str) -> Result<String, TypedError> {
        self.text(name)?.ok_or_else(|| self.missing(name))
    }

    fn amount(&mut self, name: &'static str) -> Result<Decimal, TypedError> {
        match self.take(name)? {
            Some(Value::Decimal(d)) => Ok(d),
            Some(Value::Int(i)) => Ok(Decimal::from(i)),
            _ => Err(self.missing(name)),
        }
    }

    fn date(&mut self, name: &'static str) -> Result<Option<NaiveDate>, TypedError> {
        Ok(match self.take(name)? {
            Some(Value::Date(d)) => Some(d),
            _ => None,
        })
    }

    fn start_at(&mut self, name: &'static str) -> Result<Option<StartAt>, TypedError> {
        Ok(match self.take(name)? {
            Some(Value::Date(d)) => Some(StartAt::Date(d)),
            Some(Value::DateTime(t)) => Some(StartAt::Instant(t)),
            _ => None,
        })
    }

    fn count(&mut self, name: &'static str) -> Result<Option<i64>, TypedError> {
        Ok(match self.take(name)? {
            Some(Value::Int(n)) => Some(n),
            _ => None,
        })
    }

    fn object(&mut self, name: &'static str) -> Result<BTreeMap<String, Value>, TypedError> {
        Ok(match self.take(name)? {
            Some(Value::Object(map)) => map,
            _ => BTreeMap::new(),
        })
    }

    fn names(&mut self, name: &'static str) -> Result<Option<Names>, TypedError> {
        Ok(match self.take(name)? {
            Some(Value::Str(s)) => Some(Names::One(s)),
            Some(Value::List(items)) => Some(Names::Many(
                items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::Str(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            )),
            _ => None,
        })
    }

    /// What is left: template variables, or (reading old rows) fields carried as given.
    fn rest(&mut self) -> Result<BTreeMap<String, Value>, TypedError> {
        let rest = std::mem::take(&mut self.fields);
        if !self.schema.template_variables
            && !self.lenient
            && let Some(field) = rest.keys().next()
        {
            return Err(TypedError::Unknown {
                kind: self.schema.kind.as_str(),
                field: field.clone(),
            });
        }
        Ok(rest)
    }
}

/// A JSON value read as a field of type `ty`: money and dates from numbers or text.
fn read_json(json: &Json, ty: FieldType) -> Option<Value> {
    if json.is_null() {
        return Some(Value::Null);
    }
    let text = json.as_str().map(str::trim);
    let value = match ty {
        FieldType::Amount => match json {
            Json::Number(n) => Decimal::from_str(&n.to_string())
                .or_else(|_| Decimal::from_scientific(&n.to_string()))
                .ok()
                .map(Value::Decimal)?,
            _ => Decimal::from_str(text?)
                .or_else(|_| Decimal::from_scientific(text.unwrap_or_default()))
                .ok()
                .map(Value::Decimal)?,
        },
        // A date-time an older version wrote keeps its (local) date part.
        FieldType::Date => {
            let text = text?;
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .or_else(|| {
                    DateTime::parse_from_rfc3339(text)
                        .ok()
                        .map(|at| at.date_naive())
                })
                .map(Value::Date)?
        }
        FieldType::DateOrInstant => {
            let text = text?;
            match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) => Value::Date(date),
                Err(_) => Value::DateTime(DateTime::parse_from_rfc3339(text).ok()?),
            }
        }
        FieldType::Count => Value::Int(json.as_i64()?),
        FieldType::Text | FieldType::Object | FieldType::Texts => Value::from_json(json),
    };
    ty.accepts_value(&value).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_outbox_payload_reads_back_to_the_same_json() {
        let payloads = [
            json!({"type": "payment", "id": "dibao-1-e7", "instance": "dibao-1", "amount": "705.00",
                   "purpose": "dibao", "schedule": "monthly", "from": "2026-04-01", "payee": "张三"}),
            json!({"type": "notification", "id": "dibao-1-e2", "instance": "dibao-1",
                   "template": "dibao_rejected", "to": "applicant", "reasons": ["收入超标"]}),
            json!({"type": "start_process", "id": "dibao-1-e9", "instance": "dibao-1",
                   "process": "dibao_review", "at": "2026-09-01", "data": {"case": "dibao-1"}}),
            json!({"type": "escalation", "id": "dibao-1-e4", "instance": "dibao-1",
                   "to_role": ["county_staff"], "reason": "超期", "task": "approve"}),
            json!({"type": "payment_stop", "id": "r-1-e3", "instance": "r-1", "purpose": "tekun",
                   "from": "2026-05-01", "case": "tekun-1"}),
        ];
        for payload in payloads {
            let typed = Outward::from_json(&payload, None).expect("reads");
            assert_eq!(typed.to_json(), payload);
        }
    }

    #[test]
    fn rows_of_an_older_version_still_read() {
        // Written before the schema: a number for money, a field no schema declares.
        let old = json!({"type": "payment", "id": "h-1-e5", "amount": 300, "purpose": "heating_aid",
                         "payees": "active_dibao_tekun_households"});
        let typed = Outward::from_json(&old, Some("h-1")).expect("an old row reads");
        assert_eq!(typed.instance, "h-1");
        let TypedEffect::Payment(payment) = &typed.effect else {
            panic!("not a payment: {typed:?}");
        };
        assert_eq!(payment.amount, Decimal::from(300));
        assert!(payment.extra.contains_key("payees"));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let table = [
            (json!({"type": "start_process", "id": "x"}), "process"),
            (json!({"type": "start_process", "process": ""}), "process"),
            (
                json!({"type": "start_process", "process": "p", "data": [1]}),
                "data",
            ),
            (
                json!({"type": "start_process", "process": "p", "at": "next spring"}),
                "at",
            ),
            (
                json!({"type": "payment", "amount": "many", "purpose": "dibao"}),
                "amount",
            ),
            (
                json!({"type": "payment", "amount": "1", "purpose": "dibao", "from": "May"}),
                "from",
            ),
            (json!({"type": "escalation", "reason": "late"}), "to_role"),
        ];
        for (payload, field) in table {
            let error = Outward::from_json(&payload, None).expect_err("refused");
            assert_eq!(error.field(), Some(field), "{payload}: {error}");
        }
        assert_eq!(
            Outward::from_json(&json!({"type": "fax"}), None),
            Err(TypedError::UnknownType("fax".into()))
        );
    }

    fn row(kind: &str, payload: Json) -> crate::store::OutboxRow {
        crate::store::OutboxRow {
            id: "dibao-1-e7".into(),
            instance_id: "dibao-1".into(),
            kind: kind.into(),
            payload,
            created_at: chrono::DateTime::from_timestamp(0, 0).expect("epoch"),
        }
    }

    #[test]
    fn an_outbox_row_reads_with_its_own_kind_id_and_instance() {
        // An old row: no type, id or instance in the payload, money as a number, a
        // date-time where a date is declared.
        let old = row(
            "payment",
            json!({"amount": 705, "purpose": "dibao", "schedule": "monthly",
                   "from": "2026-04-01T00:00:00+08:00", "payee": "张三"}),
        );
        let typed = parse_outbox(&old).expect("reads");
        assert_eq!(
            (typed.id.as_str(), typed.instance.as_str()),
            ("dibao-1-e7", "dibao-1")
        );
        let TypedEffect::Payment(payment) = &typed.effect else {
            panic!("not a payment: {typed:?}");
        };
        assert_eq!(payment.amount, Decimal::from(705));
        assert_eq!(payment.from, NaiveDate::from_ymd_opt(2026, 4, 1));
        let table = [
            (
                row("payment", json!({"type": "notification", "template": "x"})),
                Some("type"),
            ),
            (row("payment", json!([1, 2])), None),
            (row("fax", json!({})), None),
            (
                row("payment", json!({"amount": "many", "purpose": "dibao"})),
                Some("amount"),
            ),
        ];
        for (bad, field) in table {
            let error = parse_outbox(&bad).expect_err("refused");
            assert_eq!(error.field(), field, "{}: {error}", bad.payload);
        }
    }

    #[test]
    fn a_step_cannot_emit_a_field_no_schema_declares() {
        let fields = BTreeMap::from([
            ("amount".to_string(), Value::Int(1)),
            ("purpose".to_string(), Value::Str("dibao".into())),
            ("shedule".to_string(), Value::Str("monthly".into())),
        ]);
        let error = Outward::from_fields("c-e1".into(), "c".into(), EffectKind::Payment, fields)
            .expect_err("refused");
        assert_eq!(error.field(), Some("shedule"));
    }
}
