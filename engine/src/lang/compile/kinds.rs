//! The bodies of the node kinds with most to read: tasks (with deadlines),
//! multi-instance nodes, rules, and message handlers (`on:`/`receive`).

use super::*;

impl Compiler<'_, '_> {
    pub(super) fn task(
        &mut self,
        f: &mut Fields<'_>,
        base: &BTreeMap<String, Type>,
    ) -> (NodeKind, Completion) {
        let mut roles = Vec::new();
        if let Some(y) = f.get("role") {
            roles.extend(self.roles(y, "role"));
        }
        if let Some(y) = f.get("roles") {
            roles.extend(self.roles(y, "roles"));
        }
        let scope = Scope::new(base);
        let unit = f
            .get("unit")
            .and_then(|y| self.expr(y, &scope, Expect::Assignable(&Type::String, "unit"), "unit"));
        let (form, form_ty) = match f.get("form") {
            Some(y) => self.form(y, "form"),
            None => (
                Vec::new(),
                Type::Object {
                    fields: BTreeMap::new(),
                    open: false,
                },
            ),
        };
        let deadline = f.get("deadline").and_then(|y| self.task_deadline(y));
        let separate_from = match f.get("separate_from") {
            Some(y) => self
                .ctx
                .str_list(y, "separate_from")
                .iter()
                .filter_map(|(id, at)| self.resolve_node(id, at))
                .collect(),
            None => Vec::new(),
        };
        let form_scope = Scope::new(base).with("form", form_ty.clone());
        let (multi, item_ty) = match f.get("multi") {
            Some(y) => self.multi(y, base, &form_ty),
            None => (None, None),
        };
        let assignee = f.get("assignee").and_then(|y| {
            let scope = match &item_ty {
                Some(t) => Scope::new(base).with("item", t.clone()),
                None => Scope::new(base),
            };
            self.expr(
                y,
                &scope,
                Expect::Assignable(&Type::String, "assignee"),
                "assignee",
            )
        });
        if roles.is_empty() && assignee.is_none() && multi.is_none() {
            self.ctx.error_hint(
                &f.at,
                codes::E_MISSING_KEY,
                "a task needs `role`, `roles`, `assignee` or `multi`",
                "name the role whose users may claim it",
            );
        }
        let on = match f.get("on") {
            Some(y) => self.handlers(y, base),
            None => Vec::new(),
        };
        let completion = self.completion(f, &form_scope, true);
        (
            NodeKind::Task(TaskDecl {
                roles,
                unit,
                assignee,
                form,
                deadline,
                separate_from,
                multi,
                on,
            }),
            completion,
        )
    }

    pub(super) fn task_deadline(&mut self, y: &Yaml) -> Option<TaskDeadline> {
        let mut f = self.ctx.fields(y, "deadline")?;
        let due = f
            .required(self.ctx, "due")
            .and_then(|d| self.duration(d, "due"));
        let remind_before = f
            .get("remind_before")
            .and_then(|d| self.duration(d, "remind_before"));
        let escalate_to = f.get("escalate_to").and_then(|r| {
            let role = self.ctx.str(r, "escalate_to")?.to_string();
            self.role(&role, &r.at);
            Some(role)
        });
        f.finish(self.ctx);
        Some(TaskDeadline {
            due: due?,
            remind_before,
            escalate_to,
        })
    }

    pub(super) fn multi(
        &mut self,
        y: &Yaml,
        base: &BTreeMap<String, Type>,
        form_ty: &Type,
    ) -> (Option<MultiInstance>, Option<Type>) {
        let Some(mut f) = self.ctx.fields(y, "multi") else {
            return (None, None);
        };
        let scope = Scope::new(base);
        let for_each = f.required(self.ctx, "for_each").and_then(|e| {
            let expr = self.expr(e, &scope, Expect::Any, "for_each")?;
            if !matches!(expr.result_type(), Type::List(_) | Type::Any) {
                self.ctx.error(
                    &e.at,
                    codes::E_TYPE,
                    format!("`for_each` must be a list, not {}", expr.result_type()),
                );
                return None;
            }
            Some(expr)
        });
        let item_ty = for_each.as_ref().map(|e| match e.result_type() {
            Type::List(item) => (**item).clone(),
            _ => Type::Any,
        });
        let collect = f.required(self.ctx, "collect").and_then(|c| {
            let name = self.ctx.str(c, "collect")?.to_string();
            match self.declared.get(&name) {
                Some(Type::List(_) | Type::Any) => Some(name),
                Some(other) => {
                    self.ctx.error(
                        &c.at,
                        codes::E_TYPE,
                        format!("`collect` variable `{name}` must be a list, not {other}"),
                    );
                    None
                }
                None => {
                    self.ctx.error_hint(
                        &c.at,
                        codes::E_UNKNOWN_VARIABLE,
                        format!("`collect` names the undeclared variable `{name}`"),
                        "declare it under `variables:` with type list",
                    );
                    None
                }
            }
        });
        let when_scope = Scope::new(base).with("form", form_ty.clone());
        let complete_when = f
            .required(self.ctx, "complete_when")
            .and_then(|c| self.expr(c, &when_scope, Expect::Bool, "complete_when"));
        f.finish(self.ctx);
        match (for_each, collect, complete_when) {
            (Some(for_each), Some(collect), Some(complete_when)) => (
                Some(MultiInstance {
                    for_each,
                    collect,
                    complete_when,
                }),
                item_ty,
            ),
            _ => (None, item_ty),
        }
    }

    pub(super) fn rule(
        &mut self,
        f: &mut Fields<'_>,
        base: &BTreeMap<String, Type>,
    ) -> (NodeKind, Completion) {
        // Each common input and its default; a program's own case fields have none:
        // the rule node gives them (`input: {request: "request"}`).
        const INPUTS: &[(&str, Option<&str>)] = &[
            ("household", Some("household")),
            ("area", Some("area")),
            ("as_of", Some("date_of(now)")),
            ("request", None),
        ];
        let program_at = f.key_at("program").unwrap_or(f.at);
        let program = f.required(self.ctx, "program").and_then(|y| {
            let p = self.ctx.str(y, "program")?.to_string();
            if !self.load.programs.contains(&p) {
                let hint = hint_list(&p, self.load.programs.iter().map(String::as_str));
                self.ctx.error_hint(
                    &y.at,
                    codes::E_UNKNOWN_PROGRAM,
                    format!("unknown assessment program `{p}`"),
                    hint,
                );
            }
            Some(p)
        });
        let scope = Scope::new(base);
        let mut inputs = Vec::new();
        let given: Vec<(String, Yaml)> = match f.get("input") {
            Some(y) => self
                .ctx
                .entries(y, "input")
                .iter()
                .map(|(k, v)| (k.name.clone(), v.clone()))
                .collect(),
            None => Vec::new(),
        };
        // Besides the common inputs, a program reads the fields its rule file's
        // `case:` block declares (`request`, `member` …); any other name is a mistake.
        let declared = program
            .as_ref()
            .and_then(|p| self.load.program_fields.get(p))
            .cloned();
        for (name, value) in &given {
            let common = INPUTS.iter().any(|(n, _)| n == name);
            if let Some(declared) = &declared
                && !common
                && !declared.contains(name)
            {
                let known = INPUTS
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(declared.iter().map(String::as_str));
                let hint = hint_list(name, known);
                self.ctx.error_hint(
                    &value.at,
                    codes::E_UNKNOWN_KEY,
                    format!(
                        "unknown rule input `{name}`: program `{}` reads the common inputs and the case fields its rule file declares",
                        program.as_deref().unwrap_or_default()
                    ),
                    hint,
                );
                continue;
            }
            if let Some(e) = self.expr(value, &scope, Expect::Any, "input") {
                inputs.push((name.clone(), e));
            }
        }
        for (name, default) in INPUTS {
            let Some(default) = default else { continue };
            if given.iter().any(|(n, _)| n == name) {
                continue;
            }
            match Expr::compile(default, &scope) {
                Ok(e) => inputs.push((name.to_string(), e)),
                Err(_) => self.ctx.error_hint(
                    &program_at,
                    codes::E_UNKNOWN_VARIABLE,
                    format!("the rule reads `{name}` from `{default}` by default, but that is not in scope"),
                    format!("declare the variable or give `input: {{{name}: EXPR}}`"),
                ),
            }
        }
        let result_scope = Scope::new(base).with("result", assessment_type());
        let completion = self.completion(f, &result_scope, true);
        (
            NodeKind::Rule(RuleDecl {
                program: program.unwrap_or_default(),
                inputs,
            }),
            completion,
        )
    }

    /// The message handlers of an `on:` map (a receive node's, or a task's interrupting ones).
    pub(super) fn handlers(
        &mut self,
        on: &Yaml,
        base: &BTreeMap<String, Type>,
    ) -> Vec<MessageHandler> {
        let mut handlers = Vec::new();
        for (key, body) in self.ctx.entries(on, "on") {
            let what = format!("message `{}`", key.name);
            let Some(mut h) = self.ctx.fields(body, &what) else {
                continue;
            };
            let roles = h
                .get("roles")
                .map(|r| self.roles(r, "roles"))
                .unwrap_or_default();
            let (form, form_ty) = match h.get("form") {
                Some(y) => self.form(y, "form"),
                None => (
                    Vec::new(),
                    Type::Object {
                        fields: BTreeMap::new(),
                        open: false,
                    },
                ),
            };
            let scope = Scope::new(base).with("message", form_ty);
            let completion = self.completion(&mut h, &scope, true);
            h.finish(self.ctx);
            handlers.push(MessageHandler {
                name: key.name.clone(),
                roles,
                form,
                completion,
            });
        }
        handlers
    }

    pub(super) fn receive(
        &mut self,
        f: &mut Fields<'_>,
        base: &BTreeMap<String, Type>,
    ) -> ReceiveDecl {
        let mut handlers = Vec::new();
        if let Some(on) = f.required(self.ctx, "on") {
            handlers = self.handlers(on, base);
            if handlers.is_empty() && matches!(on.value, YamlValue::Map(_)) {
                self.ctx.error(
                    &on.at,
                    codes::E_MISSING_KEY,
                    "a receive node waits for at least one message",
                );
            }
        }
        let timeout = f.get("timeout").and_then(|y| {
            let mut t = self.ctx.fields(y, "timeout")?;
            let scope = Scope::new(base);
            let spec = self.timer_spec(&mut t, &scope, "after");
            let completion = self.completion(&mut t, &scope, true);
            t.finish(self.ctx);
            Some((spec?, completion))
        });
        ReceiveDecl { handlers, timeout }
    }
}
