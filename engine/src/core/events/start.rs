//! The start event: the case's unit, its variables (checked at the door: every problem
//! at once, see `door.rs`), deadlines armed at start, the first node.

use crate::core::*;
use crate::lang::model::SYSTEM_ROLE;

fn problem(path: &str, message: &str) -> FieldProblem {
    FieldProblem {
        path: path.to_string(),
        message: message.to_string(),
    }
}

impl Run<'_> {
    pub(in crate::core) fn start(
        &mut self,
        actor: &Actor,
        data: &BTreeMap<String, Value>,
    ) -> Result<(), StepError> {
        let started_by = &self.def.started_by;
        if !started_by.is_empty()
            && !actor
                .roles
                .iter()
                .any(|r| r == SYSTEM_ROLE || started_by.contains(r))
        {
            return Err(StepError::Forbidden(format!(
                "a case of {} is started by {}; {} has {}",
                self.def.id,
                started_by.join(" or "),
                actor.user,
                actor.roles.join(", ")
            )));
        }
        self.st.started_at = self.now;
        self.st.started_by = actor.user.clone();
        self.st.unit = actor.unit.clone();
        // Every problem of the data at once (each at its JSON path), nothing stored.
        let mut problems = Vec::new();
        for (key, value) in data {
            let path = format!("$.{key}");
            if key == "unit" {
                // A case may be started for the actor's unit or one below it (a county
                // user starting a case for a township), never for a unit beside or above.
                match value {
                    Value::Str(unit) if !unit.is_empty() => {
                        if !unit_contains(&actor.unit, unit) {
                            return Err(StepError::Forbidden(format!(
                                "{} acts for {} and may not start a case for {unit}",
                                actor.user, actor.unit
                            )));
                        }
                        self.st.unit = unit.clone();
                    }
                    _ => problems.push(problem(&path, "must be a unit path")),
                }
                continue;
            }
            let Some(decl) = self.def.variable(key) else {
                problems.push(problem(
                    &path,
                    "unknown field: not a variable of this process",
                ));
                continue;
            };
            let found = self.door_problems(key, &decl.ty, value, &path);
            if !found.is_empty() {
                problems.extend(found);
                continue;
            }
            match value.clone().coerce(&decl.ty, &path) {
                Ok(Value::Str(s)) if decl.required && s.trim().is_empty() => {
                    problems.push(problem(&path, "must not be empty"));
                }
                Ok(typed) => {
                    self.st.vars.insert(key.clone(), typed);
                }
                Err(e) => problems.push(problem(&e.path, &e.message)),
            }
        }
        for decl in &self.def.variables {
            if data.contains_key(&decl.name) {
                continue;
            }
            if let Some(default) = &decl.default {
                self.st.vars.insert(decl.name.clone(), default.clone());
            } else if decl.required {
                problems.push(problem(&format!("$.{}", decl.name), "required"));
            } else {
                // Declared but not given: null, so `coalesce(contact, …)` and
                // `is_null(…)` work instead of the step failing on a missing name.
                self.st.vars.insert(decl.name.clone(), Value::Null);
            }
        }
        if !problems.is_empty() {
            return Err(invalid_all(problems));
        }
        self.refresh_builtins();
        self.start_checks()?;
        self.business_key()?;
        self.active_need()?;
        for i in 0..self.def.deadlines.len() {
            if self.def.deadlines[i].start.is_none() {
                self.arm_deadline(i)?;
            }
        }
        let token = self.new_token(self.def.start);
        self.enter(self.def.start, token)
    }

    /// The definition's `checks:` over the variables as they stand at start: every one
    /// that does not hold (or cannot be computed for this data) refuses the start, all
    /// at once.
    fn start_checks(&mut self) -> Result<(), StepError> {
        if self.def.checks.is_empty() {
            return Ok(());
        }
        let scope = self.scope(&[]);
        let problems: Vec<FieldProblem> = self
            .def
            .checks
            .iter()
            .filter(|check| !matches!(check.condition.eval(&scope), Ok(Value::Bool(true))))
            .map(|check| problem(&check.path, &check.message))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(invalid_all(problems))
        }
    }

    /// The case's business key (`key:`), from its variables as they stand at start. A key
    /// that is `null` (the data names no ID number) leaves the case without one; a key that
    /// cannot be computed, or is blank, refuses the start: the uniqueness it stands for
    /// could not be kept.
    fn business_key(&mut self) -> Result<(), StepError> {
        let Some(expr) = &self.def.key else {
            return Ok(());
        };
        let scope = self.scope(&[]);
        match expr.eval(&scope) {
            Ok(Value::Str(key)) if !key.trim().is_empty() => {
                self.st.key = Some(key);
                Ok(())
            }
            Ok(Value::Null) => Ok(()),
            Ok(_) => Err(invalid(
                "$",
                &format!(
                    "the business key `{}` is empty for this data",
                    expr.source()
                ),
            )),
            Err(e) => Err(invalid(
                "$",
                &format!(
                    "the business key `{}` cannot be computed: {e}",
                    expr.source()
                ),
            )),
        }
    }

    /// What `requires_active:` needs, from the variables as they stand at start: both
    /// parts must be non-empty strings, else the start is refused (`invalid_data`).
    fn active_need(&mut self) -> Result<(), StepError> {
        let Some(need) = &self.def.requires_active else {
            return Ok(());
        };
        let scope = self.scope(&[]);
        let part = |expr: &jiuzhu_rules::expr::Expr, what: &str| match expr.eval(&scope) {
            Ok(Value::Str(text)) if !text.trim().is_empty() => Ok(text),
            Ok(_) => Err(invalid(
                "$",
                &format!(
                    "`requires_active` {what} `{}` is empty for this data",
                    expr.source()
                ),
            )),
            Err(e) => Err(invalid(
                "$",
                &format!(
                    "`requires_active` {what} `{}` cannot be computed: {e}",
                    expr.source()
                ),
            )),
        };
        let process = part(&need.process, "process")?;
        let id_number = part(&need.id_number, "id_number")?;
        self.st.requires = Some(ActiveNeed { process, id_number });
        Ok(())
    }
}
