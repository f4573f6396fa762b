//! Process-level pieces: ids, calendars, roles, references to nodes, durations
//! and the variable declarations.

use super::*;

impl Compiler<'_, '_> {
    /// An identifier `[a-z][a-z0-9_]*`.
    pub(super) fn id(&mut self, y: &Yaml, what: &str) -> Option<String> {
        let s = self.ctx.str(y, what)?;
        if is_identifier(s) {
            Some(s.to_string())
        } else {
            self.ctx.error_hint(
                &y.at,
                codes::E_BAD_ID,
                format!("{what} `{s}` is not a valid identifier"),
                "use lowercase letters, digits and `_`, starting with a letter",
            );
            None
        }
    }

    pub(super) fn calendar(&mut self, y: &Yaml) -> Option<String> {
        let id = self.ctx.str(y, "calendar")?.to_string();
        if let Some(known) = &self.load.calendars
            && !known.contains(&id)
        {
            let hint = hint_list(&id, known.iter().map(String::as_str));
            self.ctx.error_hint(
                &y.at,
                codes::E_UNKNOWN_CALENDAR,
                format!("unknown calendar `{id}`"),
                hint,
            );
        }
        Some(id)
    }

    pub(super) fn role(&mut self, role: &str, at: &Pos) {
        if role == SYSTEM_ROLE {
            return;
        }
        if let Some(known) = &self.load.roles
            && !known.contains(role)
        {
            let hint = hint_list(role, known.iter().map(String::as_str));
            self.ctx.error_hint(
                at,
                codes::E_UNKNOWN_ROLE,
                format!("unknown role `{role}`"),
                hint,
            );
        }
    }

    pub(super) fn roles(&mut self, y: &Yaml, what: &str) -> Vec<String> {
        let roles = self.ctx.str_list(y, what);
        for (role, at) in &roles {
            self.role(role, at);
        }
        roles.into_iter().map(|(r, _)| r).collect()
    }

    pub(super) fn node_ref(&mut self, y: &Yaml, what: &str) -> Option<NodeIdx> {
        let id = self.ctx.str(y, what)?;
        self.resolve_node(id, &y.at)
    }

    pub(super) fn resolve_node(&mut self, id: &str, at: &Pos) -> Option<NodeIdx> {
        match self.node_ids.get(id) {
            Some(index) => Some(*index),
            None => {
                let message = format!("unknown node `{id}`");
                match did_you_mean(id, self.node_ids.keys().map(String::as_str)) {
                    Some(best) => self.ctx.error_hint(
                        at,
                        codes::E_UNKNOWN_NODE,
                        message,
                        format!("did you mean `{best}`?"),
                    ),
                    None => self.ctx.error(at, codes::E_UNKNOWN_NODE, message),
                }
                None
            }
        }
    }

    pub(super) fn duration(&mut self, y: &Yaml, what: &str) -> Option<Duration> {
        let text = match &y.value {
            YamlValue::Str(s) => s.clone(),
            YamlValue::Int(i) => i.to_string(),
            _ => {
                self.ctx.wrong_type(y, "a duration like 5wd or 7d", what);
                return None;
            }
        };
        match Duration::from_str(text.trim()) {
            Ok(d) => Some(d),
            Err(err) => {
                self.ctx.error_hint(
                    &y.at,
                    codes::E_BAD_DURATION,
                    format!("{what}: {err}"),
                    "durations are 5wd (working days), 7d, 36h, 30min, 6mo or 1y",
                );
                None
            }
        }
    }

    /// The business key: a string expression over the declared variables (and built-ins)
    /// as they stand at start. Written as a plain expression or an `=expression`.
    pub(super) fn business_key(&mut self, y: &Yaml) -> Option<Expr> {
        let YamlValue::Str(text) = &y.value else {
            self.ctx.wrong_type(y, "a string expression", "key");
            return None;
        };
        let skip = usize::from(text.starts_with('='));
        let base = self.base.clone();
        let scope = Scope::new(&base);
        self.expr_at(
            y,
            text,
            skip,
            &scope,
            Expect::Assignable(&Type::String, "key"),
        )
    }

    // ---- variables and types ------------------------------------------------

    pub(super) fn variables(&mut self, y: &Yaml) -> Vec<VariableDecl> {
        let mut out: Vec<VariableDecl> = Vec::new();
        for (key, spec_yaml) in self.ctx.entries(y, "variables") {
            if !is_identifier(&key.name) {
                self.ctx.error_hint(
                    &key.at,
                    codes::E_BAD_ID,
                    format!("variable name `{}` is not a valid identifier", key.name),
                    "use lowercase letters, digits and `_`, starting with a letter",
                );
                continue;
            }
            if builtins().iter().any(|(b, _)| *b == key.name)
                || ["form", "message", "result", "item"].contains(&key.name.as_str())
            {
                self.ctx.error(
                    &key.at,
                    codes::E_DUPLICATE_ID,
                    format!(
                        "`{}` is a built-in variable and cannot be declared",
                        key.name
                    ),
                );
                continue;
            }
            let what = format!("variable `{}`", key.name);
            let Some(spec) = self.spec(spec_yaml, SpecKind::Variable, &what) else {
                continue;
            };
            let default = spec.default.and_then(|d| self.literal(d, &spec.ty, &what));
            self.declared.insert(key.name.clone(), spec.ty.clone());
            self.base.insert(key.name.clone(), spec.ty.clone());
            out.push(VariableDecl {
                name: key.name.clone(),
                ty: spec.ty,
                label: spec.label,
                required: spec.required,
                default,
            });
        }
        out
    }
}
