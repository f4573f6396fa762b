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
            ("policy".to_string(), self.policy_in_force()),
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
            if let Some(cond) = &template.condition
                && !self.eval_bool(cond, extras, node_id)?
            {
                continue;
            }
            let mut fields = BTreeMap::new();
            for (name, value) in &template.fields {
                fields.insert(name.clone(), self.render(value, extras, node_id)?);
            }
            self.push_outward(template.kind, fields);
        }
        Ok(())
    }

    pub(in crate::core) fn push_outward(
        &mut self,
        kind: crate::lang::model::EffectKind,
        mut fields: BTreeMap<String, Value>,
    ) {
        let id = self.st.next_id('e');
        fields
            .entry("instance".into())
            .or_insert_with(|| Value::Str(self.st.id.clone()));
        self.effects
            .push(Effect::Outward(Outward { id, kind, fields }));
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
