//! The one declaration of every outward effect kind: its fields, their types, which are
//! required and which values they allow. The compiler checks `emit:` items against it,
//! the core builds typed effects by it, the dispatcher reads outbox payloads by it, and
//! the effect table of `docs/process-language.md` is generated from it.

use jiuzhu_rules::{Type, Value};

use crate::lang::model::EffectKind;

/// The type of an effect field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    /// Money: a decimal, never a float.
    Amount,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// A date, or a date and time.
    DateOrInstant,
    /// A whole number from 1.
    Count,
    /// A mapping of values.
    Object,
    /// One text or a list of texts.
    Texts,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Text => "string",
            FieldType::Amount => "decimal",
            FieldType::Date => "date",
            FieldType::DateOrInstant => "date or datetime",
            FieldType::Count => "int",
            FieldType::Object => "object",
            FieldType::Texts => "string or list<string>",
        }
    }

    /// True when an expression of type `ty` may give this field its value (`null` is
    /// always allowed for a field that is not required: the field is then absent).
    pub fn accepts_type(self, ty: &Type) -> bool {
        match (self, ty) {
            (_, Type::Any | Type::Null) => true,
            (FieldType::Text, t) => Type::String.accepts(t),
            (FieldType::Amount, t) => Type::Decimal.accepts(t),
            (FieldType::Date, t) => matches!(t, Type::Date),
            (FieldType::DateOrInstant, t) => matches!(t, Type::Date | Type::DateTime),
            (FieldType::Count, t) => matches!(t, Type::Int),
            (FieldType::Object, t) => matches!(t, Type::Object { .. }),
            (FieldType::Texts, t) => Type::String.accepts(t) || Type::list(Type::String).accepts(t),
        }
    }

    /// True when `value` (a literal, or a value computed at run time) fits.
    pub fn accepts_value(self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (FieldType::Text, Value::Str(_)) => true,
            (FieldType::Amount, Value::Decimal(_) | Value::Int(_)) => true,
            (FieldType::Date, Value::Date(_)) => true,
            (FieldType::DateOrInstant, Value::Date(_) | Value::DateTime(_)) => true,
            (FieldType::Count, Value::Int(n)) => *n >= 1,
            (FieldType::Object, Value::Object(_)) => true,
            (FieldType::Texts, Value::Str(_)) => true,
            (FieldType::Texts, Value::List(items)) => {
                items.iter().all(|v| matches!(v, Value::Str(_)))
            }
            _ => false,
        }
    }
}

/// Which values a text field allows beyond its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    Any,
    /// Exactly these.
    Values(&'static [&'static str]),
    /// A role of the org file.
    Roles,
    /// A notification template of the project (`templates/NAME.yaml`).
    Templates,
    /// A payment purpose the project knows: a rule program or a declared purpose.
    Purposes,
    /// A process of the project.
    Processes,
}

impl Allowed {
    fn describe(self) -> String {
        match self {
            Allowed::Any => String::new(),
            Allowed::Values(values) => values
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Allowed::Roles => "a role of `org.yaml`".into(),
            Allowed::Templates => "a template of `templates/`".into(),
            Allowed::Purposes => "a rule program or a purpose of `purposes.yaml`".into(),
            Allowed::Processes => "a process of the project".into(),
        }
    }
}

/// One field of an effect.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    pub allowed: Allowed,
    /// Personal data: masked at every edge.
    pub personal: bool,
    pub doc: &'static str,
}

const fn field(name: &'static str, ty: FieldType, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        required: false,
        allowed: Allowed::Any,
        personal: false,
        doc,
    }
}

const fn required(spec: FieldSpec) -> FieldSpec {
    FieldSpec {
        required: true,
        ..spec
    }
}

const fn allowed(spec: FieldSpec, allowed: Allowed) -> FieldSpec {
    FieldSpec { allowed, ..spec }
}

const fn personal(spec: FieldSpec) -> FieldSpec {
    FieldSpec {
        personal: true,
        ..spec
    }
}

/// The declared shape of one effect kind.
#[derive(Debug, Clone, Copy)]
pub struct EffectSchema {
    pub kind: EffectKind,
    pub fields: &'static [FieldSpec],
    /// Other fields are the variables of the notification template it is sent with
    /// (`template`, else `default_template`): a field no template uses is refused.
    pub template_variables: bool,
    /// The template used when the effect names none.
    pub default_template: Option<&'static str>,
    pub doc: &'static str,
}

impl EffectSchema {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

use FieldType::*;

const NOTIFICATION: &[FieldSpec] = &[
    required(allowed(
        field("template", Text, "the notice's template"),
        Allowed::Templates,
    )),
    allowed(
        field("to", Text, "the applicant, at the case's `contact`"),
        Allowed::Values(&["applicant"]),
    ),
    allowed(
        field("to_role", Texts, "the role(s) of the case's unit"),
        Allowed::Roles,
    ),
    field("to_user", Texts, "user id(s) of the org file"),
    field(
        "to_department",
        Text,
        "a department of the notification settings (`departments:`), by its own webhook",
    ),
];

const PAYMENT: &[FieldSpec] = &[
    required(field(
        "amount",
        Amount,
        "per payment (per month when monthly)",
    )),
    required(allowed(
        field("purpose", Text, "the program paid for"),
        Allowed::Purposes,
    )),
    allowed(
        field("schedule", Text, "`once` (default) or every month"),
        Allowed::Values(&["once", "monthly"]),
    ),
    field("from", Date, "first month paid; required when monthly"),
    field("at", Date, "day of a one-off payment"),
    field("until", Date, "last day of a benefit with a known end"),
    field("review_on", Date, "when the benefit is reviewed"),
    field("installment", Count, "this payment is installment k"),
    field(
        "installments",
        Count,
        "split into this many monthly installments",
    ),
    personal(field(
        "payee",
        Text,
        "who is paid; the ledger refuses a payment without one",
    )),
    personal(field("account", Text, "bank account")),
    personal(field("id_number", Text, "payee's ID number")),
    field(
        "case",
        Text,
        "case the money belongs to (default: this case)",
    ),
    field("unit", Text, "office unit (default: the case's)"),
    field("reissue_of", Text, "the failed payment this one re-issues"),
    field(
        "reserve_reply",
        Text,
        "draw it from the township reserve; the case is answered with this message (`paid`, `amount`, `reason`)",
    ),
];

const PAYMENT_STOP: &[FieldSpec] = &[
    required(allowed(
        field("purpose", Text, "the program whose benefit stops"),
        Allowed::Purposes,
    )),
    field(
        "from",
        Date,
        "first day without payment (default: next month)",
    ),
    field(
        "case",
        Text,
        "case whose benefit stops (default: this case)",
    ),
    field("unit", Text, "office unit (default: the case's)"),
];

const START_PROCESS: &[FieldSpec] = &[
    required(allowed(
        field("process", Text, "the process started"),
        Allowed::Processes,
    )),
    field("at", DateOrInstant, "when (default: at once)"),
    field("data", Object, "the new case's start data"),
    field(
        "reply",
        Text,
        "message the parent gets once the child started or was refused (`status`, `code`)",
    ),
    field(
        "on_end",
        Text,
        "message the parent gets when the child ends",
    ),
];

const MESSAGE: &[FieldSpec] = &[
    required(field("name", Text, "the message the other case receives")),
    field(
        "case",
        Text,
        "the receiving case's id (or `process` + `key`)",
    ),
    allowed(
        field("process", Text, "the receiving case's process, with `key`"),
        Allowed::Processes,
    ),
    field("key", Text, "the business key of the process's active case"),
    field("data", Object, "the message's data"),
];

const ESCALATION: &[FieldSpec] = &[
    required(allowed(
        field("to_role", Texts, "the role(s) of the case's unit told"),
        Allowed::Roles,
    )),
    field("reason", Text, "why"),
    allowed(
        field(
            "template",
            Text,
            "the notice's template (default `escalation`)",
        ),
        Allowed::Templates,
    ),
];

/// Every effect kind's schema, in the order the docs list them.
pub const SCHEMAS: &[EffectSchema] = &[
    EffectSchema {
        kind: EffectKind::Notification,
        fields: NOTIFICATION,
        template_variables: true,
        default_template: None,
        doc: "a notice by mail/webhook; other fields are its template's variables",
    },
    EffectSchema {
        kind: EffectKind::Payment,
        fields: PAYMENT,
        template_variables: false,
        default_template: None,
        doc: "a payment order for the ledger",
    },
    EffectSchema {
        kind: EffectKind::PaymentStop,
        fields: PAYMENT_STOP,
        template_variables: false,
        default_template: None,
        doc: "stops a monthly benefit",
    },
    EffectSchema {
        kind: EffectKind::StartProcess,
        fields: START_PROCESS,
        template_variables: false,
        default_template: None,
        doc: "starts a case of another process (its id derived from the effect id)",
    },
    EffectSchema {
        kind: EffectKind::Escalation,
        fields: ESCALATION,
        template_variables: true,
        default_template: Some("escalation"),
        doc: "a notice to a role about a late case; other fields are its template's variables",
    },
    EffectSchema {
        kind: EffectKind::Message,
        fields: MESSAGE,
        template_variables: false,
        default_template: None,
        doc: "a message to another case, delivered by the engine as the system user",
    },
];

/// The schema of `kind`.
pub fn schema(kind: EffectKind) -> &'static EffectSchema {
    // Every kind has exactly one entry (a test checks it); the first is a safe fallback.
    SCHEMAS
        .iter()
        .find(|s| s.kind == kind)
        .unwrap_or(&SCHEMAS[0])
}

/// The schema of the effect written `name` in YAML and in the outbox's `type`.
pub fn by_name(name: &str) -> Option<&'static EffectSchema> {
    SCHEMAS.iter().find(|s| s.kind.as_str() == name)
}

/// The effect table of `docs/process-language.md`, generated from [`SCHEMAS`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| effect | field | type | required | allowed values | meaning |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for schema in SCHEMAS {
        out.push_str(&format!(
            "| `{}` | | | | | {} |\n",
            schema.kind.as_str(),
            schema.doc
        ));
        for f in schema.fields {
            let mut meaning = f.doc.to_string();
            if f.personal {
                meaning.push_str(" (personal: masked)");
            }
            out.push_str(&format!(
                "| | `{}` | {} | {} | {} | {} |\n",
                f.name,
                f.ty.name(),
                if f.required { "yes" } else { "" },
                f.allowed.describe(),
                meaning
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_exactly_one_schema() {
        for kind in [
            EffectKind::Notification,
            EffectKind::Payment,
            EffectKind::PaymentStop,
            EffectKind::StartProcess,
            EffectKind::Escalation,
            EffectKind::Message,
        ] {
            assert_eq!(SCHEMAS.iter().filter(|s| s.kind == kind).count(), 1);
            assert_eq!(schema(kind).kind, kind);
            assert_eq!(by_name(kind.as_str()).map(|s| s.kind), Some(kind));
        }
        assert!(by_name("fax").is_none());
    }

    #[test]
    fn field_types_accept_what_they_say() {
        assert!(FieldType::Amount.accepts_type(&Type::Int));
        assert!(!FieldType::Amount.accepts_type(&Type::String));
        assert!(FieldType::Texts.accepts_type(&Type::list(Type::String)));
        assert!(!FieldType::Date.accepts_type(&Type::DateTime));
        assert!(!FieldType::Count.accepts_value(&Value::Int(0)));
        assert!(FieldType::Text.accepts_value(&Value::Null));
    }
}
