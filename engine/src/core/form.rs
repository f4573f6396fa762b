//! Checks submitted task and message data against a declared form.
//!
//! Data that does not fit is refused as `invalid_data` with its JSON path, and
//! nothing changes; defaults (which may be expressions) fill absent fields.

use std::collections::BTreeMap;

use jiuzhu_rules::Value;
use jiuzhu_rules::expr::Env;

use super::scope::{Scope, render_template};
use crate::lang::model::FieldDecl;

pub(super) enum FormError {
    Invalid {
        path: String,
        message: String,
    },
    /// A default or condition failed to evaluate: a definition problem, not the user's.
    Eval(String),
}

fn invalid(path: String, message: impl Into<String>) -> FormError {
    FormError::Invalid {
        path,
        message: message.into(),
    }
}

/// Returns the checked form as an object: declared fields only, typed, defaults applied.
pub(super) fn check(
    fields: &[FieldDecl],
    data: &BTreeMap<String, Value>,
    scope: &Scope<'_>,
    root: &str,
) -> Result<Value, FormError> {
    for key in data.keys() {
        if !fields.iter().any(|f| &f.name == key) {
            let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            return Err(invalid(
                format!("$.{key}"),
                format!("unknown field (the form has: {})", known.join(", ")),
            ));
        }
    }
    let mut out = BTreeMap::new();
    for field in fields {
        let path = format!("$.{}", field.name);
        match data.get(&field.name) {
            Some(Value::Null) | None => {}
            Some(value) => {
                let typed = value
                    .clone()
                    .coerce(&field.ty, &path)
                    .map_err(|e| invalid(e.path, e.message))?;
                check_bounds(field, &typed, &path)?;
                out.insert(field.name.clone(), typed);
            }
        }
    }
    for field in fields {
        if out.contains_key(&field.name) {
            continue;
        }
        if let Some(default) = &field.default {
            let value = render_template(default, scope).map_err(FormError::Eval)?;
            if value != Value::Null {
                let typed = value
                    .coerce(&field.ty, &format!("$.{}", field.name))
                    .map_err(|e| FormError::Eval(e.to_string()))?;
                out.insert(field.name.clone(), typed);
            }
        }
    }
    let form = Value::Object(out);
    for field in fields {
        if form.get(&field.name).is_some() {
            continue;
        }
        let required = match &field.required_when {
            Some(cond) => {
                let extras = [(root, &form)];
                let inner = Scope {
                    extras: &extras,
                    builtins: scope.builtins,
                    vars: scope.vars,
                };
                matches!(
                    cond.eval(&inner as &dyn Env)
                        .map_err(|e| FormError::Eval(format!("`{}`: {e}", cond.source())))?,
                    Value::Bool(true)
                )
            }
            None => field.required,
        };
        if required {
            let why = match &field.required_when {
                Some(cond) => format!("required when {}", cond.source()),
                None => "required".to_string(),
            };
            return Err(invalid(format!("$.{}", field.name), why));
        }
    }
    Ok(form)
}

fn check_bounds(field: &FieldDecl, value: &Value, path: &str) -> Result<(), FormError> {
    if let (Some(min), Some(v)) = (
        field.min.as_ref().and_then(Value::as_decimal),
        value.as_decimal(),
    ) && v < min
    {
        return Err(invalid(path.to_string(), format!("must be >= {min}")));
    }
    if let (Some(max), Some(v)) = (
        field.max.as_ref().and_then(Value::as_decimal),
        value.as_decimal(),
    ) && v > max
    {
        return Err(invalid(path.to_string(), format!("must be <= {max}")));
    }
    if let (Some(min_items), Value::List(items)) = (field.min_items, value)
        && items.len() < min_items
    {
        return Err(invalid(
            path.to_string(),
            format!("needs at least {min_items} items"),
        ));
    }
    Ok(())
}
