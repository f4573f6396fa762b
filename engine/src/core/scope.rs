//! What expressions see (context extras, built-ins, variables) and what evaluating them does: assignments, emitted effects.

use crate::core::*;

/// Variables visible to an expression: context extras, built-ins, then the instance's variables.
pub(in crate::core) struct Scope<'s> {
    pub(in crate::core) extras: &'s [(&'s str, &'s Value)],
    pub(in crate::core) builtins: &'s BTreeMap<String, Value>,
    pub(in crate::core) vars: &'s BTreeMap<String, Value>,
}

impl Env for Scope<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.extras
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .or_else(|| self.builtins.get(name))
            .or_else(|| self.vars.get(name))
    }
}

impl Run<'_> {
    pub(in crate::core) fn refresh_builtins(&mut self) {
        self.builtins = self.compute_builtins();
    }

    pub(in crate::core) fn compute_builtins(&self) -> BTreeMap<String, Value> {
        let mut roles: Vec<Value> = Vec::new();
        for task in &self.st.tasks {
            for role in &task.roles {
                let role = Value::Str(role.clone());
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
        let policy = self.policy_in_force();
        BTreeMap::from([
            ("instance_id".to_string(), Value::Str(self.st.id.clone())),
            ("process".to_string(), Value::Str(self.st.process.clone())),
            ("unit".to_string(), Value::Str(self.st.unit.clone())),
            (
                "started_at".to_string(),
                Value::DateTime(self.st.started_at),
            ),
            ("now".to_string(), Value::DateTime(self.now)),
            (
                "started_by".to_string(),
                Value::Str(self.st.started_by.clone()),
            ),
            (
                "outcome".to_string(),
                self.st
                    .outcome
                    .clone()
                    .map(Value::Str)
                    .unwrap_or(Value::Null),
            ),
            ("open_task_roles".to_string(), Value::List(roles)),
            ("policy".to_string(), policy.clone()),
            ("previous_policy".to_string(), self.policy_before(&policy)),
        ])
    }

    /// The figures in force for the case's unit today, for a definition that reads them.
    fn policy_in_force(&self) -> Value {
        if !self.def.reads_policy {
            return Value::Null;
        }
        self.ctx
            .assessor
            .policy(&self.st.unit, self.now.date_naive())
            .unwrap_or(Value::Null)
    }

    /// The figures in force for the case's unit the day before `policy` took effect;
    /// null without one.
    fn policy_before(&self, policy: &Value) -> Value {
        if !self.def.reads_previous_policy {
            return Value::Null;
        }
        let Some(Value::Date(from)) = policy.get("effective_from") else {
            return Value::Null;
        };
        from.pred_opt()
            .and_then(|day| self.ctx.assessor.policy(&self.st.unit, day))
            .unwrap_or(Value::Null)
    }

    /// What an expression sees: `extras` (form, message, result …), then built-ins, then variables.
    pub(in crate::core) fn scope<'s>(&'s self, extras: &'s [(&'s str, &'s Value)]) -> Scope<'s> {
        Scope {
            extras,
            builtins: &self.builtins,
            vars: &self.st.vars,
        }
    }

    pub(in crate::core) fn eval(
        &self,
        expr: &Expr,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<Value, StepError> {
        let scope = self.scope(extras);
        expr.eval(&scope)
            .map_err(|e| incident(node_id, &format!("`{}`: {e}", expr.source())))
    }

    pub(in crate::core) fn eval_bool(
        &self,
        expr: &Expr,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<bool, StepError> {
        match self.eval(expr, extras, node_id)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            other => Err(incident(
                node_id,
                &format!("`{}` gave {}, not a bool", expr.source(), other.type_name()),
            )),
        }
    }

    pub(in crate::core) fn eval_string(
        &self,
        expr: &Expr,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<String, StepError> {
        match self.eval(expr, extras, node_id)? {
            Value::Str(s) => Ok(s),
            other => Err(incident(
                node_id,
                &format!(
                    "`{}` gave {}, not a string",
                    expr.source(),
                    other.type_name()
                ),
            )),
        }
    }

    pub(in crate::core) fn assign(
        &mut self,
        set: &[Assignment],
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<(), StepError> {
        for assignment in set {
            let value = self.eval(&assignment.value, extras, node_id)?;
            let ty = self
                .def
                .variable(&assignment.variable)
                .map(|d| d.ty.clone())
                .unwrap_or(Type::Any);
            let value = value
                .coerce(&ty, &format!("$.{}", assignment.variable))
                .map_err(|e| incident(node_id, &e.to_string()))?;
            self.st.vars.insert(assignment.variable.clone(), value);
        }
        Ok(())
    }

    pub(in crate::core) fn emit(
        &mut self,
        emit: &[EffectTemplate],
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<(), StepError> {
        for template in emit {
            let Some(list) = &template.for_each else {
                if let Some(fields) = self.emit_fields(template, extras, node_id)? {
                    let id = self.st.next_id('e');
                    self.push_outward_with_id(id, template.kind, fields, node_id)?;
                }
                continue;
            };
            let items = match self.eval(list, extras, node_id)? {
                Value::List(items) => items,
                Value::Null => Vec::new(),
                other => {
                    return Err(incident(
                        node_id,
                        &format!(
                            "`for_each: {}` gave {}, not a list",
                            list.source(),
                            other.type_name()
                        ),
                    ));
                }
            };
            // One counter value for the item; each element's effect adds its index, so
            // the ids are unique and a replay yields the same ones.
            let base = self.st.next_id('e');
            for (index, element) in items.iter().enumerate() {
                let mut scope: Vec<(&str, &Value)> = extras.to_vec();
                scope.push((template.item_name.as_str(), element));
                if let Some(fields) = self.emit_fields(template, &scope, node_id)? {
                    let id = format!("{base}-{index}");
                    self.push_outward_with_id(id, template.kind, fields, node_id)?;
                }
            }
        }
        Ok(())
    }

    /// The rendered fields of one emission, or `None` when its condition does not hold.
    fn emit_fields(
        &self,
        template: &EffectTemplate,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<Option<BTreeMap<String, Value>>, StepError> {
        if let Some(cond) = &template.condition
            && !self.eval_bool(cond, extras, node_id)?
        {
            return Ok(None);
        }
        let mut fields = BTreeMap::new();
        for (name, value) in &template.fields {
            fields.insert(name.clone(), self.render(value, extras, node_id)?);
        }
        Ok(Some(fields))
    }

    /// An outward effect the core itself writes (reminders, escalations of tasks).
    pub(in crate::core) fn push_outward(
        &mut self,
        kind: crate::lang::model::EffectKind,
        fields: BTreeMap<String, Value>,
        node_id: &str,
    ) -> Result<(), StepError> {
        let id = self.st.next_id('e');
        self.push_outward_with_id(id, kind, fields, node_id)
    }

    /// Types the rendered fields by the effect's schema: a value of the wrong type (an
    /// expression typed `any` that gave a list for an amount) is an incident on the case,
    /// not a row the dispatcher would refuse.
    fn push_outward_with_id(
        &mut self,
        id: String,
        kind: crate::lang::model::EffectKind,
        fields: BTreeMap<String, Value>,
        node_id: &str,
    ) -> Result<(), StepError> {
        let outward =
            Outward::from_fields_of(id, self.st.id.clone(), kind, fields, self.def.stored)
                .map_err(|e| incident(node_id, &e.to_string()))?;
        self.effects.push(Effect::Outward(outward));
        Ok(())
    }

    pub(in crate::core) fn render(
        &self,
        template: &ValueTemplate,
        extras: &[(&str, &Value)],
        node_id: &str,
    ) -> Result<Value, StepError> {
        let scope = self.scope(extras);
        render_template(template, &scope).map_err(|message| incident(node_id, &message))
    }

    pub(in crate::core) fn eval_or_invalid(&self, e: form::FormError, node_id: &str) -> StepError {
        match e {
            form::FormError::Invalid { path, message } => StepError::InvalidData { path, message },
            form::FormError::Eval(message) => incident(node_id, &message),
        }
    }
}

/// Evaluates a YAML value template: literals as written, `=expressions` in `env`.
pub(in crate::core) fn render_template(
    template: &ValueTemplate,
    env: &dyn Env,
) -> Result<Value, String> {
    Ok(match template {
        ValueTemplate::Literal(v) => v.clone(),
        ValueTemplate::Expr(e) => e
            .eval(env)
            .map_err(|err| format!("`{}`: {err}", e.source()))?,
        ValueTemplate::List(items) => Value::List(
            items
                .iter()
                .map(|i| render_template(i, env))
                .collect::<Result<_, _>>()?,
        ),
        ValueTemplate::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_template(v, env)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}
