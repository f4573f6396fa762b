//! The case file of assess.md: parsed from JSON with every problem reported at
//! its JSON path, and offered to rule expressions as typed values.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::case_fields::{CaseFields, FieldReader};
use crate::domain::DISABILITY_KINDS;
use crate::json::{JsonError, parse_strict};
use crate::limits::{InputLimits, LimitViolation};
use crate::ruleset::RuleSet;
use crate::value::{Type, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Urban,
    Rural,
}

impl Area {
    pub fn name(self) -> &'static str {
        match self {
            Area::Urban => "urban",
            Area::Rural => "rural",
        }
    }
}

/// Income kinds of assess.md.
pub const INCOME_KINDS: [&str; 10] = [
    "wage",
    "business",
    "property",
    "transfer",
    "pension_basic",
    "social_assistance",
    "traffic_accident_aid",
    "preferential_care",
    "reward",
    "other",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// A program for which a rule file is loaded.
    pub program: String,
    pub as_of: NaiveDate,
    pub area: Area,
    pub household: Household,
    /// The program's own fields, as its rule file's `case:` block declares them
    /// (each declared one present, null when not given).
    pub fields: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Household {
    pub members: Vec<Member>,
    pub savings: Decimal,
    pub vehicles: Vec<Vehicle>,
    pub rigid_expenses: Decimal,
    pub supporter_able: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub birth_date: NaiveDate,
    pub disability: Option<Disability>,
    pub disabled_veteran_grade: Option<i64>,
    pub serious_illness: bool,
    pub martyr_family: bool,
    pub demobilized_veteran: bool,
    pub entitled_group: bool,
    pub in_school: bool,
    pub adl_not_met: i64,
    pub income: Vec<Income>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Disability {
    /// 1..4
    pub grade: i64,
    /// One of [`DISABILITY_KINDS`].
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Income {
    /// One of [`INCOME_KINDS`].
    pub kind: String,
    pub monthly: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vehicle {
    pub price: Decimal,
    pub disabled_mobility: bool,
}

/// One problem in a case file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    /// JSON path, e.g. `$.household.members[1].income[0].monthly`.
    pub path: String,
    pub message: String,
}

impl From<LimitViolation> for InputError {
    fn from(v: LimitViolation) -> InputError {
        InputError {
            message: format!(
                "{}: {} exceeds the limit of {}",
                v.code(),
                v.actual,
                v.limit
            ),
            path: v.path,
        }
    }
}

impl From<JsonError> for InputError {
    fn from(e: JsonError) -> InputError {
        let message = match &e {
            JsonError::DuplicateKey {
                key, line, column, ..
            } => format!("duplicate_key: {key:?} is given twice (line {line}, column {column})"),
            JsonError::Syntax {
                message,
                line,
                column,
            } => format!("invalid_json: {message} (line {line}, column {column})"),
        };
        InputError {
            path: e.path().to_string(),
            message,
        }
    }
}

/// Reads a case file's text: strict JSON (a key given twice is refused, not
/// resolved by the last one winning), within `limits`, then [`parse_case_with`].
pub fn parse_case_text(text: &str, limits: &InputLimits) -> Result<Case, Vec<InputError>> {
    limits.check_text(text).map_err(|v| vec![v.into()])?;
    let json = parse_strict(text).map_err(|e| vec![e.into()])?;
    parse_case_with(&json, limits)
}

/// Walks the JSON, collecting every problem.
struct Reader {
    errors: Vec<InputError>,
}

impl Reader {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(InputError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// The fields of an object, reporting unknown ones.
    fn object<'j>(
        &mut self,
        json: &'j Json,
        path: &str,
        known: &[&str],
    ) -> Option<&'j serde_json::Map<String, Json>> {
        let Json::Object(map) = json else {
            self.error(path, "must be an object");
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.error(&format!("{path}.{key}"), "unknown field");
            }
        }
        Some(map)
    }

    fn required<'j>(
        &mut self,
        map: &'j serde_json::Map<String, Json>,
        key: &str,
        path: &str,
    ) -> Option<&'j Json> {
        match map.get(key) {
            Some(v) => Some(v),
            None => {
                self.error(&format!("{path}.{key}"), "is required");
                None
            }
        }
    }

    fn string(&mut self, json: &Json, path: &str) -> Option<String> {
        match json {
            Json::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Json::String(_) => {
                self.error(path, "must not be empty");
                None
            }
            _ => {
                self.error(path, "must be a string");
                None
            }
        }
    }

    fn one_of(&mut self, json: &Json, path: &str, allowed: &[&str]) -> Option<String> {
        let s = self.string(json, path)?;
        if allowed.contains(&s.as_str()) {
            Some(s)
        } else {
            self.error(
                path,
                format!("must be one of {}, found {s:?}", allowed.join(", ")),
            );
            None
        }
    }

    fn income_kind(&mut self, json: &Json, path: &str) -> Option<String> {
        let s = self.string(json, path)?;
        if INCOME_KINDS.contains(&s.as_str()) {
            return Some(s);
        }
        let expected = INCOME_KINDS.join(", ");
        self.error(
            path,
            format!("unknown income kind {s:?} (expected one of {expected})"),
        );
        None
    }

    fn date(&mut self, json: &Json, path: &str) -> Option<NaiveDate> {
        let s = match json {
            Json::String(s) => s,
            _ => {
                self.error(path, "must be a date YYYY-MM-DD");
                return None;
            }
        };
        // chrono's `%Y` accepts signs and short years; the contract is exactly YYYY-MM-DD.
        let shaped = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) if shaped => Some(d),
            _ => {
                self.error(path, format!("must be a date YYYY-MM-DD, found {s:?}"));
                None
            }
        }
    }

    /// Money: a decimal string or a JSON number without exponent, >= 0.
    fn money(&mut self, json: &Json, path: &str) -> Option<Decimal> {
        let text = match json {
            Json::String(s) => s.trim().to_string(),
            Json::Number(n) => n.to_string(),
            _ => {
                self.error(path, "must be a decimal amount");
                return None;
            }
        };
        if text.contains(['e', 'E']) {
            self.error(
                path,
                format!("must be written without an exponent, found {text:?}"),
            );
            return None;
        }
        match Decimal::from_str(&text) {
            Ok(d) if d < Decimal::ZERO => {
                self.error(path, "must be >= 0");
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                self.error(path, format!("must be a decimal amount, found {text:?}"));
                None
            }
        }
    }

    fn boolean(&mut self, map: &serde_json::Map<String, Json>, key: &str, path: &str) -> bool {
        match map.get(key) {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => {
                self.error(&format!("{path}.{key}"), "must be true or false");
                false
            }
        }
    }

    fn int_in(&mut self, json: &Json, path: &str, low: i64, high: i64) -> Option<i64> {
        match json.as_i64() {
            Some(i) if (low..=high).contains(&i) => Some(i),
            _ => {
                self.error(path, format!("must be an integer from {low} to {high}"));
                None
            }
        }
    }

    fn list<'j>(
        &mut self,
        map: &'j serde_json::Map<String, Json>,
        key: &str,
        path: &str,
    ) -> &'j [Json] {
        match map.get(key) {
            None | Some(Json::Null) => &[],
            Some(Json::Array(items)) => items,
            Some(_) => {
                self.error(&format!("{path}.{key}"), "must be a list");
                &[]
            }
        }
    }
}

/// Parses and validates a case file (assess.md) for the shipped programs,
/// reporting every problem, within [`InputLimits::default`].
pub fn parse_case(json: &Json) -> Result<Case, Vec<InputError>> {
    parse_case_with(json, &InputLimits::default())
}

/// [`parse_case`] within `limits`: data beyond a limit is refused before it is read.
pub fn parse_case_with(json: &Json, limits: &InputLimits) -> Result<Case, Vec<InputError>> {
    parse_case_for(json, limits, RuleSet::builtin_ref())
}

/// [`parse_case_with`] for the programs of `rules`: `program` names one of them, and
/// the fields its rule file's `case:` block declares are read and its checks run.
pub fn parse_case_for(
    json: &Json,
    limits: &InputLimits,
    rules: &RuleSet,
) -> Result<Case, Vec<InputError>> {
    limits.check(json).map_err(|violations| {
        violations
            .into_iter()
            .map(InputError::from)
            .collect::<Vec<_>>()
    })?;
    let mut r = Reader { errors: Vec::new() };
    let names: Vec<&str> = rules.programs().map(|p| p.program.as_str()).collect();
    let program = match json {
        Json::Object(map) => map
            .get("program")
            .and_then(|p| r.one_of(p, "$.program", &names))
            .and_then(|p| rules.program(&p)),
        _ => None,
    };
    let declared = program.map(|p| &p.case);
    let mut known = vec!["program", "as_of", "area", "household"];
    if let Some(d) = declared {
        known.extend(d.fields.keys().map(String::as_str));
    }
    // A field given as null is a field the case does not have, whichever program
    // (a request left null by a caller that builds every case alike).
    if let Json::Object(map) = json {
        known.extend(
            map.iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.as_str()),
        );
    }
    let Some(top) = r.object(json, "$", &known) else {
        return Err(r.errors);
    };
    if !top.contains_key("program") {
        r.error("$.program", "is required");
    }
    let as_of = r
        .required(top, "as_of", "$")
        .and_then(|d| r.date(d, "$.as_of"));
    let area = r
        .required(top, "area", "$")
        .and_then(|a| r.one_of(a, "$.area", &["urban", "rural"]))
        .map(|a| {
            if a == "urban" {
                Area::Urban
            } else {
                Area::Rural
            }
        });
    let household = r
        .required(top, "household", "$")
        .and_then(|h| household(&mut r, h, as_of));

    let mut fields = BTreeMap::new();
    if let Some(program) = program {
        let ids: Vec<String> = household
            .as_ref()
            .map(|h| h.members.iter().map(|m| m.id.clone()).collect())
            .unwrap_or_default();
        let mut fr = FieldReader {
            member_ids: &ids,
            problems: Vec::new(),
        };
        fields = fr.fields(
            top,
            "$",
            &program.case.fields,
            &format!("is required for {}", program.program),
        );
        for (path, message) in fr.problems {
            r.error(&path, message);
        }
    }
    match (program, as_of, area, household) {
        (Some(program), Some(as_of), Some(area), Some(household)) if r.errors.is_empty() => {
            let case = Case {
                program: program.program.clone(),
                as_of,
                area,
                household,
                fields,
            };
            // The program's declared checks over the whole case.
            let vars = case.variables();
            for check in &program.case.checks {
                if !matches!(check.require.eval(&vars), Ok(Value::Bool(true))) {
                    r.error(&check.path, check.message.clone());
                }
            }
            if r.errors.is_empty() {
                Ok(case)
            } else {
                Err(r.errors)
            }
        }
        _ => Err(r.errors),
    }
}

/// Reads a household (`$.household` of a case) against the case format common to
/// every program, as of `as_of`, within [`InputLimits::default`]; every problem at
/// its JSON path.
pub fn parse_household(json: &Json, as_of: NaiveDate) -> Result<Household, Vec<InputError>> {
    let wrapped = serde_json::json!({ "household": json });
    InputLimits::default()
        .check(&wrapped)
        .map_err(|violations| {
            violations
                .into_iter()
                .map(InputError::from)
                .collect::<Vec<_>>()
        })?;
    let mut r = Reader { errors: Vec::new() };
    match household(&mut r, json, Some(as_of)) {
        Some(h) if r.errors.is_empty() => Ok(h),
        _ => Err(r.errors),
    }
}

fn household(r: &mut Reader, json: &Json, as_of: Option<NaiveDate>) -> Option<Household> {
    let path = "$.household";
    let map = r.object(
        json,
        path,
        &[
            "members",
            "savings",
            "vehicles",
            "rigid_expenses",
            "supporter_able",
        ],
    )?;
    let members_json = r.required(map, "members", path);
    let mut members = Vec::new();
    let mut ok = true;
    match members_json {
        Some(Json::Array(items)) if items.is_empty() => {
            r.error("$.household.members", "must list at least one member");
            ok = false;
        }
        Some(Json::Array(items)) => {
            let mut ids = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let mpath = format!("$.household.members[{i}]");
                match member(r, item, &mpath, as_of) {
                    Some(m) => {
                        if !ids.insert(m.id.clone()) {
                            r.error(
                                &format!("{mpath}.id"),
                                format!("duplicate member id {:?}", m.id),
                            );
                        }
                        members.push(m);
                    }
                    None => ok = false,
                }
            }
        }
        Some(_) => {
            r.error("$.household.members", "must be a list");
            ok = false;
        }
        None => ok = false,
    }
    let savings = r
        .required(map, "savings", path)
        .and_then(|s| r.money(s, "$.household.savings"));
    let mut vehicles = Vec::new();
    for (i, v) in r.list(map, "vehicles", path).iter().enumerate() {
        let vpath = format!("$.household.vehicles[{i}]");
        let Some(vmap) = r.object(v, &vpath, &["price", "disabled_mobility"]) else {
            ok = false;
            continue;
        };
        let price = r
            .required(vmap, "price", &vpath)
            .and_then(|p| r.money(p, &format!("{vpath}.price")));
        let disabled_mobility = r.boolean(vmap, "disabled_mobility", &vpath);
        match price {
            Some(price) => vehicles.push(Vehicle {
                price,
                disabled_mobility,
            }),
            None => ok = false,
        }
    }
    let rigid_expenses = match map.get("rigid_expenses") {
        None | Some(Json::Null) => Some(Decimal::ZERO),
        Some(v) => r.money(v, "$.household.rigid_expenses"),
    };
    let supporter_able = r.boolean(map, "supporter_able", path);
    if !ok {
        return None;
    }
    Some(Household {
        members,
        savings: savings?,
        vehicles,
        rigid_expenses: rigid_expenses?,
        supporter_able,
    })
}

fn member(r: &mut Reader, json: &Json, path: &str, as_of: Option<NaiveDate>) -> Option<Member> {
    let map = r.object(
        json,
        path,
        &[
            "id",
            "birth_date",
            "disability",
            "disabled_veteran_grade",
            "serious_illness",
            "martyr_family",
            "demobilized_veteran",
            "entitled_group",
            "in_school",
            "adl_not_met",
            "income",
        ],
    )?;
    let before = r.errors.len();
    let id = r
        .required(map, "id", path)
        .and_then(|v| r.string(v, &format!("{path}.id")));
    let birth_date = r
        .required(map, "birth_date", path)
        .and_then(|v| r.date(v, &format!("{path}.birth_date")));
    if let (Some(b), Some(a)) = (birth_date, as_of)
        && b > a
    {
        r.error(&format!("{path}.birth_date"), "must not be after as_of");
    }
    let disability = match map.get("disability") {
        None | Some(Json::Null) => None,
        Some(d) => {
            let dpath = format!("{path}.disability");
            r.object(d, &dpath, &["grade", "kind"]).and_then(|dmap| {
                let grade = r
                    .required(dmap, "grade", &dpath)
                    .and_then(|g| r.int_in(g, &format!("{dpath}.grade"), 1, 4));
                let kind = r
                    .required(dmap, "kind", &dpath)
                    .and_then(|k| r.one_of(k, &format!("{dpath}.kind"), &DISABILITY_KINDS));
                Some(Disability {
                    grade: grade?,
                    kind: kind?,
                })
            })
        }
    };
    let disabled_veteran_grade = match map.get("disabled_veteran_grade") {
        None | Some(Json::Null) => None,
        Some(g) => r.int_in(g, &format!("{path}.disabled_veteran_grade"), 1, 10),
    };
    let adl_not_met = match map.get("adl_not_met") {
        None | Some(Json::Null) => 0,
        Some(a) => r
            .int_in(a, &format!("{path}.adl_not_met"), 0, 6)
            .unwrap_or(0),
    };
    let mut income = Vec::new();
    for (i, entry) in r.list(map, "income", path).iter().enumerate() {
        let ipath = format!("{path}.income[{i}]");
        let Some(imap) = r.object(entry, &ipath, &["kind", "monthly"]) else {
            continue;
        };
        let kind = r
            .required(imap, "kind", &ipath)
            .and_then(|k| r.income_kind(k, &format!("{ipath}.kind")));
        let monthly = r
            .required(imap, "monthly", &ipath)
            .and_then(|m| r.money(m, &format!("{ipath}.monthly")));
        if let (Some(kind), Some(monthly)) = (kind, monthly) {
            income.push(Income { kind, monthly });
        }
    }
    let member = Member {
        id: id?,
        birth_date: birth_date?,
        disability,
        disabled_veteran_grade,
        serious_illness: r.boolean(map, "serious_illness", path),
        martyr_family: r.boolean(map, "martyr_family", path),
        demobilized_veteran: r.boolean(map, "demobilized_veteran", path),
        entitled_group: r.boolean(map, "entitled_group", path),
        in_school: r.boolean(map, "in_school", path),
        adl_not_met,
        income,
    };
    (r.errors.len() == before).then_some(member)
}

fn object(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn closed(entries: Vec<(&str, Type)>) -> Type {
    Type::Object {
        fields: entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>(),
        open: false,
    }
}

fn enum_type(values: &[&str]) -> Type {
    Type::Enum(values.iter().map(|v| v.to_string()).collect())
}

impl Member {
    pub fn to_value(&self) -> Value {
        object(vec![
            ("id", Value::Str(self.id.clone())),
            ("birth_date", Value::Date(self.birth_date)),
            (
                "disability",
                match &self.disability {
                    Some(d) => object(vec![
                        ("grade", Value::Int(d.grade)),
                        ("kind", Value::Str(d.kind.clone())),
                    ]),
                    None => Value::Null,
                },
            ),
            (
                "disabled_veteran_grade",
                self.disabled_veteran_grade.map_or(Value::Null, Value::Int),
            ),
            ("serious_illness", Value::Bool(self.serious_illness)),
            ("martyr_family", Value::Bool(self.martyr_family)),
            ("demobilized_veteran", Value::Bool(self.demobilized_veteran)),
            ("entitled_group", Value::Bool(self.entitled_group)),
            ("in_school", Value::Bool(self.in_school)),
            ("adl_not_met", Value::Int(self.adl_not_met)),
            (
                "income",
                Value::List(
                    self.income
                        .iter()
                        .map(|i| {
                            object(vec![
                                ("kind", Value::Str(i.kind.clone())),
                                ("monthly", Value::Decimal(i.monthly)),
                            ])
                        })
                        .collect(),
                ),
            ),
        ])
    }

    pub fn value_type() -> Type {
        closed(vec![
            ("id", Type::String),
            ("birth_date", Type::Date),
            (
                "disability",
                closed(vec![
                    ("grade", Type::Int),
                    ("kind", enum_type(&DISABILITY_KINDS)),
                ]),
            ),
            ("disabled_veteran_grade", Type::Int),
            ("serious_illness", Type::Bool),
            ("martyr_family", Type::Bool),
            ("demobilized_veteran", Type::Bool),
            ("entitled_group", Type::Bool),
            ("in_school", Type::Bool),
            ("adl_not_met", Type::Int),
            (
                "income",
                Type::list(closed(vec![
                    ("kind", enum_type(&INCOME_KINDS)),
                    ("monthly", Type::Decimal),
                ])),
            ),
        ])
    }
}

impl Case {
    /// The variables a rule file sees: `program`, `as_of`, `area`, `members`,
    /// `household` and the program's declared fields (`request`, `member` …).
    pub fn variables(&self) -> BTreeMap<String, Value> {
        let members = Value::List(
            self.household
                .members
                .iter()
                .map(Member::to_value)
                .collect(),
        );
        let h = &self.household;
        let household = object(vec![
            ("members", members.clone()),
            ("savings", Value::Decimal(h.savings)),
            (
                "vehicles",
                Value::List(
                    h.vehicles
                        .iter()
                        .map(|v| {
                            object(vec![
                                ("price", Value::Decimal(v.price)),
                                ("disabled_mobility", Value::Bool(v.disabled_mobility)),
                            ])
                        })
                        .collect(),
                ),
            ),
            ("rigid_expenses", Value::Decimal(h.rigid_expenses)),
            ("supporter_able", Value::Bool(h.supporter_able)),
        ]);
        [
            ("program", Value::Str(self.program.clone())),
            ("as_of", Value::Date(self.as_of)),
            ("area", Value::Str(self.area.name().to_string())),
            ("members", members),
            ("household", household),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(self.fields.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect()
    }

    /// The static types of [`Case::variables`] for a program declaring `fields`.
    pub fn variable_types(fields: &CaseFields) -> BTreeMap<String, Type> {
        let members = Type::list(Member::value_type());
        let household = closed(vec![
            ("members", members.clone()),
            ("savings", Type::Decimal),
            (
                "vehicles",
                Type::list(closed(vec![
                    ("price", Type::Decimal),
                    ("disabled_mobility", Type::Bool),
                ])),
            ),
            ("rigid_expenses", Type::Decimal),
            ("supporter_able", Type::Bool),
        ]);
        [
            ("program", Type::String),
            ("as_of", Type::Date),
            ("area", enum_type(&["urban", "rural"])),
            ("members", members),
            ("household", household),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(fields.types())
        .collect()
    }
}
