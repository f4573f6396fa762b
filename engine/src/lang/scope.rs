//! The variables an expression may read at each place of a definition, and the
//! known shapes of the built-in and context variables.

use std::collections::BTreeMap;

use jiuzhu_rules::Type;
use jiuzhu_rules::expr::TypeEnv;

/// Built-in variables, always in scope and read-only.
pub fn builtins() -> Vec<(&'static str, Type)> {
    vec![
        ("instance_id", Type::String),
        ("process", Type::String),
        ("unit", Type::String),
        ("started_at", Type::DateTime),
        ("now", Type::DateTime),
        ("started_by", Type::String),
        ("outcome", Type::String),
        ("open_task_roles", Type::list(Type::String)),
        // The policy figures in force for the case's unit today (`policy.heating_aid…`).
        ("policy", jiuzhu_rules::policy::Policy::value_type()),
        // The policy in force for the unit the day before `policy` took effect (null when
        // none was): the figures a raise (提标) is measured from.
        (
            "previous_policy",
            jiuzhu_rules::policy::Policy::value_type(),
        ),
    ]
}

fn object(fields: &[(&str, Type)], open: bool) -> Type {
    Type::Object {
        fields: fields
            .iter()
            .map(|(name, ty)| (name.to_string(), ty.clone()))
            .collect(),
        open,
    }
}

/// The case household of `spec/assess.md`: known fields typed, others allowed.
pub fn household_type() -> Type {
    let disability = object(&[("grade", Type::Int), ("kind", Type::String)], true);
    let income = object(&[("kind", Type::String), ("monthly", Type::Decimal)], true);
    let member = object(
        &[
            ("id", Type::String),
            ("name", Type::String),
            ("birth_date", Type::Date),
            ("disability", disability),
            ("disabled_veteran_grade", Type::Int),
            ("serious_illness", Type::Bool),
            ("martyr_family", Type::Bool),
            ("demobilized_veteran", Type::Bool),
            ("entitled_group", Type::Bool),
            ("in_school", Type::Bool),
            ("adl_not_met", Type::Int),
            ("income", Type::list(income)),
        ],
        true,
    );
    let vehicle = object(
        &[("price", Type::Decimal), ("disabled_mobility", Type::Bool)],
        true,
    );
    object(
        &[
            ("members", Type::list(member)),
            ("savings", Type::Decimal),
            ("vehicles", Type::list(vehicle)),
            ("rigid_expenses", Type::Decimal),
            ("supporter_able", Type::Bool),
        ],
        true,
    )
}

/// `result` of a rule node: the assessment, its fields typed (`spec/assess.md`).
pub fn assessment_type() -> Type {
    let supplement = object(
        &[
            ("member", Type::String),
            ("categories", Type::list(Type::String)),
            ("amount", Type::Decimal),
        ],
        true,
    );
    object(
        &[
            ("program", Type::String),
            ("as_of", Type::Date),
            ("eligible", Type::Bool),
            ("category", Type::String),
            ("standard", Type::Decimal),
            ("per_capita_income", Type::Decimal),
            ("base_amount", Type::Decimal),
            ("monthly_amount", Type::Decimal),
            ("basic_amount", Type::Decimal),
            ("care_amount", Type::Decimal),
            ("advance_amount", Type::Decimal),
            ("care_tier", Type::String),
            ("approval_level", Type::String),
            ("reasons", Type::list(Type::String)),
            ("supplements", Type::list(supplement)),
        ],
        true,
    )
}

/// What is in scope at one place: the process variables and built-ins, plus
/// context variables (`form`, `message`, `result`, `item`).
pub struct Scope<'a> {
    pub base: &'a BTreeMap<String, Type>,
    pub extra: Vec<(String, Type)>,
}

impl<'a> Scope<'a> {
    pub fn new(base: &'a BTreeMap<String, Type>) -> Scope<'a> {
        Scope {
            base,
            extra: Vec::new(),
        }
    }

    pub fn with(mut self, name: &str, ty: Type) -> Scope<'a> {
        self.extra.push((name.to_string(), ty));
        self
    }

    pub fn lookup(&self, name: &str) -> Option<Type> {
        self.extra
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .or_else(|| self.base.get(name).cloned())
    }
}

impl TypeEnv for Scope<'_> {
    fn var_type(&self, name: &str) -> Option<Type> {
        self.lookup(name)
    }

    fn var_names(&self) -> Vec<String> {
        self.base
            .keys()
            .cloned()
            .chain(self.extra.iter().map(|(n, _)| n.clone()))
            .collect()
    }
}
