//! Expressions and templates, parsed and type-checked against the scope of
//! the place they appear in, and `set:` assignments.

use super::*;

impl Compiler<'_, '_> {
    /// Compiles the expression written in scalar `y` (skipping `skip` leading
    /// bytes, the `=` of a template), mapping errors to file positions.
    pub(super) fn expr_at(
        &mut self,
        y: &Yaml,
        text: &str,
        skip: usize,
        scope: &dyn TypeEnv,
        expect: Expect<'_>,
    ) -> Option<Expr> {
        let src = text.get(skip..).unwrap_or_default();
        match Expr::compile(src, scope) {
            Ok(expr) => {
                if expr.variables().iter().any(|v| v == "previous_policy") {
                    self.reads_policy = true;
                    self.reads_previous_policy = true;
                }
                if expr.variables().iter().any(|v| v == "policy") {
                    self.reads_policy = true;
                }
                let ty = expr.result_type().clone();
                let ok = match expect {
                    Expect::Any => true,
                    Expect::Bool => matches!(ty, Type::Bool | Type::Any),
                    Expect::Assignable(target, _) => assignable(target, &ty),
                };
                if !ok {
                    let (line, column) = self.ctx.lines.scalar_position(&y.at, text, skip);
                    let message = match expect {
                        Expect::Assignable(target, name) => {
                            format!("`{src}` is {ty}, but `{name}` is {target}")
                        }
                        _ => format!("a condition must be a bool, but `{src}` is {ty}"),
                    };
                    self.ctx.push(line, column, codes::E_TYPE, message, None);
                    return None;
                }
                Some(expr)
            }
            Err(errors) => {
                for e in errors {
                    let (line, column) =
                        self.ctx.lines.scalar_position(&y.at, text, skip + e.offset);
                    self.ctx.push(line, column, e.code, e.message, e.hint);
                }
                None
            }
        }
    }

    /// An expression written as a scalar (conditions, assignments).
    pub(super) fn expr(
        &mut self,
        y: &Yaml,
        scope: &dyn TypeEnv,
        expect: Expect<'_>,
        what: &str,
    ) -> Option<Expr> {
        let text = match &y.value {
            YamlValue::Str(s) => s.clone(),
            YamlValue::Bool(b) => b.to_string(),
            YamlValue::Int(i) => i.to_string(),
            YamlValue::Number(n) => n.clone(),
            _ => {
                self.ctx.wrong_type(y, "an expression (a string)", what);
                return None;
            }
        };
        self.expr_at(y, &text, 0, scope, expect)
    }

    /// A value: literal, `=expression`, or a list/mapping of those.
    pub(super) fn template(
        &mut self,
        y: &Yaml,
        scope: &dyn TypeEnv,
        ty: Option<&Type>,
    ) -> Option<ValueTemplate> {
        match &y.value {
            YamlValue::Str(s) if s.starts_with('=') => {
                let expect = ty.map_or(Expect::Any, |t| Expect::Assignable(t, "the field"));
                self.expr_at(y, s, 1, scope, expect)
                    .map(ValueTemplate::Expr)
            }
            YamlValue::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.push(self.template(item, scope, None)?);
                }
                Some(ValueTemplate::List(out))
            }
            YamlValue::Map(entries) => {
                let mut out = Vec::new();
                for (key, value) in entries {
                    if let Some(t) = self.template(value, scope, None) {
                        out.push((key.name.clone(), t));
                    }
                }
                Some(ValueTemplate::Object(out))
            }
            _ => match ty {
                Some(ty) => self.literal(y, ty, "value").map(ValueTemplate::Literal),
                None => Some(ValueTemplate::Literal(plain_value(y))),
            },
        }
    }

    pub(super) fn assignments(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Vec<Assignment> {
        let mut out = Vec::new();
        for (key, value) in self.ctx.entries(y, "set") {
            let Some(target) = self.declared.get(&key.name).cloned() else {
                let message = if self.base.contains_key(&key.name) {
                    format!(
                        "`{}` is a built-in variable and cannot be assigned",
                        key.name
                    )
                } else {
                    format!("`set` assigns the undeclared variable `{}`", key.name)
                };
                let hint = match did_you_mean(&key.name, self.declared.keys().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "declare it under `variables:`".to_string(),
                };
                self.ctx
                    .error_hint(&key.at, codes::E_UNKNOWN_VARIABLE, message, hint);
                continue;
            };
            if let Some(expr) =
                self.expr(value, scope, Expect::Assignable(&target, &key.name), "set")
            {
                out.push(Assignment {
                    variable: key.name.clone(),
                    value: expr,
                });
            }
        }
        out
    }
}
