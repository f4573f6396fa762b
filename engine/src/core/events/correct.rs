//! A correction: staff fix a case's data (a name typed wrong, an address, a member's
//! income) as a step of its own, with a reason, so the history says who changed what.
//!
//! Rules (the same in production and in `jiuzhu test`, because they are decided here):
//! - only variables the definition declares, at a path into them
//!   (`household.members[1].income`), each value checked against the declared type at
//!   that path; an item of a list must already exist (a correction changes, never adds
//!   list items); never the case's own state (tasks, timers, status, unit);
//! - a reason is required: not blank, at most [`MAX_REASON_CHARS`] characters;
//! - who: a user whose unit covers the case's unit and who holds a role one of the
//!   process's tasks is for, or a head of such a unit ([`is_supervisor_role`]);
//! - an active case only: a closed case is final (`conflict`), for heads too;
//! - the values set pass the checks at the door as a start's data does (`door.rs`): a
//!   household as the case format and its members' ID numbers and names, bank accounts,
//!   ID numbers, names, money never negative — every problem of every change at once,
//!   nothing set unless all pass;
//! - past decisions are not recomputed: nodes entered later see the new values.

use crate::core::*;
use crate::lang::scope::household_type;

/// Longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Most changes one correction may carry.
pub const MAX_CHANGES: usize = 50;

/// One step of a path into a case's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Field(String),
    Index(usize),
}

/// Reads `applicant_name`, `household.members[1].income` or `$.household.savings` into
/// segments; the first is always a field (the variable).
pub fn parse_path(path: &str) -> Result<Vec<PathSegment>, StepError> {
    let bad = |why: &str| invalid(&display_path_raw(path), why);
    let text = path.trim();
    let text = text.strip_prefix("$.").unwrap_or(text);
    if text.is_empty() {
        return Err(bad("empty path"));
    }
    let mut segments = Vec::new();
    for part in text.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(bad("each part of a path is a name (letters, digits, _)"));
        }
        segments.push(PathSegment::Field(name.to_string()));
        while !rest.is_empty() {
            let Some(close) = rest.find(']') else {
                return Err(bad("unclosed ["));
            };
            let index: usize = rest[1..close]
                .parse()
                .map_err(|_| bad("a list index is a number: [0], [1] …"))?;
            segments.push(PathSegment::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(bad("unexpected text after ]"));
            }
        }
    }
    Ok(segments)
}

/// The JSON path of parsed segments: `$.household.members[1].income`.
pub fn display_path(segments: &[PathSegment]) -> String {
    let mut out = String::from("$");
    for segment in segments {
        match segment {
            PathSegment::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn display_path_raw(path: &str) -> String {
    let text = path.trim();
    if text.starts_with('$') {
        text.to_string()
    } else {
        format!("$.{text}")
    }
}

/// The value at `segments` in a case's variables, if there is one.
pub fn value_at<'v>(
    vars: &'v BTreeMap<String, Value>,
    segments: &[PathSegment],
) -> Option<&'v Value> {
    let (PathSegment::Field(first), rest) = segments.split_first()? else {
        return None;
    };
    let mut value = vars.get(first)?;
    for segment in rest {
        value = match (segment, value) {
            (PathSegment::Field(name), Value::Object(map)) => map.get(name)?,
            (PathSegment::Index(i), Value::List(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The declared type at `segments` below a variable of type `ty`.
fn type_at(ty: &Type, segments: &[PathSegment], path: &str) -> Result<Type, StepError> {
    let mut ty = ty.clone();
    for segment in segments {
        ty = match (segment, &ty) {
            (_, Type::Any) => Type::Any,
            (PathSegment::Field(name), Type::Object { fields, open }) => match fields.get(name) {
                Some(field) => field.clone(),
                None if *open => Type::Any,
                None => {
                    let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                    return Err(invalid(
                        path,
                        &format!("unknown field {name} (declared: {})", known.join(", ")),
                    ));
                }
            },
            (PathSegment::Index(_), Type::List(item)) => (**item).clone(),
            (PathSegment::Field(name), other) => {
                return Err(invalid(path, &format!("{other} has no field {name}")));
            }
            (PathSegment::Index(_), other) => {
                return Err(invalid(path, &format!("{other} is not a list")));
            }
        };
    }
    Ok(ty)
}

/// Puts `value` at `segments` (below the variable `target`); every step but the last must exist.
fn set_at(
    target: &mut Value,
    segments: &[PathSegment],
    value: Value,
    path: &str,
) -> Result<(), StepError> {
    let Some((segment, rest)) = segments.split_first() else {
        *target = value;
        return Ok(());
    };
    let slot = match (segment, target) {
        (PathSegment::Field(name), Value::Object(map)) => {
            if rest.is_empty() {
                map.insert(name.clone(), value);
                return Ok(());
            }
            map.get_mut(name)
        }
        (PathSegment::Index(i), Value::List(items)) => {
            let len = items.len();
            match items.get_mut(*i) {
                Some(item) => Some(item),
                None => {
                    return Err(invalid(
                        path,
                        &format!(
                            "no item {i}: the list has {len} (a correction does not add items)"
                        ),
                    ));
                }
            }
        }
        (_, other) => {
            return Err(invalid(
                path,
                &format!(
                    "the case holds {} here, nothing to correct",
                    other.type_name()
                ),
            ));
        }
    };
    match slot {
        Some(next) => set_at(next, rest, value, path),
        None => Err(invalid(path, "the case has no value here to correct")),
    }
}

/// What the door checks of one correction.
enum Door {
    /// The household variable of this name, checked whole once every change is set.
    Household(String),
    /// The problems of the one field a change sets.
    Field(Vec<FieldProblem>),
}

impl Run<'_> {
    pub(in crate::core) fn correct(
        &mut self,
        actor: &Actor,
        changes: &[(String, Value)],
        reason: &str,
    ) -> Result<Option<String>, StepError> {
        if self.st.status != Status::Active {
            return Err(StepError::Conflict(format!(
                "case {} is {}: a closed case is not corrected",
                self.st.id,
                self.st.status.as_str()
            )));
        }
        self.authorize_correction(actor)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(invalid("$.reason", "a correction needs a reason"));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(invalid(
                "$.reason",
                &format!("at most {MAX_REASON_CHARS} characters"),
            ));
        }
        if changes.is_empty() {
            return Err(invalid("$.changes", "nothing to correct"));
        }
        if changes.len() > MAX_CHANGES {
            return Err(invalid(
                "$.changes",
                &format!("at most {MAX_CHANGES} changes at once"),
            ));
        }
        let mut vars = self.st.vars.clone();
        // Every change is checked, and every problem reported at once; nothing is set
        // unless all pass.
        let mut problems: Vec<FieldProblem> = Vec::new();
        let mut households = Vec::new();
        for (raw, value) in changes {
            match self.correct_one(&mut vars, raw, value) {
                Ok(Some(door)) => match door {
                    Door::Household(name) => households.push(name),
                    Door::Field(found) => problems.extend(found),
                },
                Ok(None) => {}
                Err(error) => {
                    let found = error.problems();
                    if found.is_empty() {
                        return Err(error);
                    }
                    problems.extend(found);
                }
            }
        }
        // A household is checked whole, as it stands after all the changes.
        households.sort();
        households.dedup();
        for name in households {
            if let Some(value) = vars.get(&name).filter(|v| !matches!(v, Value::Null)) {
                let path = format!("$.{name}");
                problems.extend(self.door_problems(&name, &household_type(), value, &path));
            }
        }
        if !problems.is_empty() {
            return Err(invalid_all(problems));
        }
        self.st.vars = vars;
        Ok(None)
    }

    /// Sets one change on `vars` (its type checked) and says what the door checks: the
    /// whole household it falls in, or the problems of the field it sets.
    fn correct_one(
        &self,
        vars: &mut BTreeMap<String, Value>,
        raw: &str,
        value: &Value,
    ) -> Result<Option<Door>, StepError> {
        let segments = parse_path(raw)?;
        let path = display_path(&segments);
        let Some((PathSegment::Field(name), below)) = segments.split_first() else {
            return Err(invalid(&path, "a path starts with a variable's name"));
        };
        let Some(decl) = self.def.variable(name) else {
            return Err(invalid(
                &path,
                "not a variable of this process (only declared variables are corrected)",
            ));
        };
        let ty = type_at(&decl.ty, below, &path)?;
        let typed = value
            .clone()
            .coerce(&ty, &path)
            .map_err(|e| invalid(&e.path, &e.message))?;
        if typed == Value::Null && below.is_empty() && decl.required {
            return Err(invalid(&path, "required: it cannot be corrected to null"));
        }
        let door = if decl.ty == household_type() {
            Door::Household(name.clone())
        } else {
            // The field's own name (the last of the path) says what it holds.
            let key = segments
                .iter()
                .rev()
                .find_map(|s| match s {
                    PathSegment::Field(f) => Some(f.as_str()),
                    _ => None,
                })
                .unwrap_or(name);
            Door::Field(self.door_problems(key, &ty, &typed, &path))
        };
        let var = vars.entry(name.clone()).or_insert(Value::Null);
        set_at(var, below, typed, &path)?;
        Ok(Some(door))
    }

    /// The actor works on this process's tasks (or heads) in a unit covering the case's.
    pub(in crate::core) fn authorize_correction(&self, actor: &Actor) -> Result<(), StepError> {
        if !unit_contains(&actor.unit, &self.st.unit) {
            return Err(StepError::Forbidden(format!(
                "case {} belongs to {}; {} acts for {}",
                self.st.id, self.st.unit, actor.user, actor.unit
            )));
        }
        let works_on_tasks = self.def.nodes.iter().any(|node| match &node.kind {
            NodeKind::Task(task) => task.roles.iter().any(|r| actor.roles.contains(r)),
            _ => false,
        });
        if works_on_tasks || actor.roles.iter().any(|r| is_supervisor_role(r)) {
            return Ok(());
        }
        Err(StepError::Forbidden(format!(
            "{} has {}: only staff who work on this process's tasks, or a head, correct its cases",
            actor.user,
            actor.roles.join(", ")
        )))
    }
}
