//! Process-level deadlines, message declarations and schedules (cron).

use super::*;

impl Compiler<'_, '_> {
    pub(super) fn deadline_heads(&mut self, items: &[Yaml]) {
        for (index, item) in items.iter().enumerate() {
            let YamlValue::Map(entries) = &item.value else {
                continue;
            };
            let Some((_, id_yaml)) = entries.iter().find(|(k, _)| k.name == "id") else {
                continue;
            };
            let YamlValue::Str(id) = &id_yaml.value else {
                continue;
            };
            if self.deadline_ids.insert(id.clone(), index).is_some() {
                self.ctx.error(
                    &id_yaml.at,
                    codes::E_DUPLICATE_ID,
                    format!("duplicate deadline id `{id}`"),
                );
            }
        }
    }

    pub(super) fn deadline(&mut self, y: &Yaml) -> DeadlineDecl {
        let mut decl = DeadlineDecl {
            id: String::new(),
            name: String::new(),
            start: None,
            due: Duration::working_days(0),
            stop: Vec::new(),
            remind_before: None,
            remind: Vec::new(),
            overdue_set: Vec::new(),
            overdue_emit: Vec::new(),
        };
        let Some(mut f) = self.ctx.fields(y, "a deadline") else {
            return decl;
        };
        decl.id = f
            .required(self.ctx, "id")
            .and_then(|i| self.id(i, "deadline id"))
            .unwrap_or_default();
        decl.name = f
            .get("name")
            .and_then(|n| self.ctx.str(n, "name"))
            .map_or_else(|| decl.id.clone(), str::to_string);
        decl.start = f.get("start").and_then(|s| self.node_ref(s, "start"));
        if let Some(due) = f
            .required(self.ctx, "due")
            .and_then(|d| self.duration(d, "due"))
        {
            decl.due = due;
        }
        if let Some(stop) = f.get("stop") {
            decl.stop = self
                .ctx
                .str_list(stop, "stop")
                .iter()
                .filter_map(|(id, at)| self.resolve_node(id, at))
                .collect();
        }
        decl.remind_before = f
            .get("remind_before")
            .and_then(|d| self.duration(d, "remind_before"));
        let base = self.base.clone();
        let scope = Scope::new(&base);
        decl.remind = f
            .get("remind")
            .map(|r| self.effects(r, &scope))
            .unwrap_or_default();
        if let Some(overdue) = f.get("overdue")
            && let Some(mut o) = self.ctx.fields(overdue, "overdue")
        {
            decl.overdue_set = o
                .get("set")
                .map(|s| self.assignments(s, &scope))
                .unwrap_or_default();
            decl.overdue_emit = o
                .get("emit")
                .map(|e| self.effects(e, &scope))
                .unwrap_or_default();
            o.finish(self.ctx);
        }
        f.finish(self.ctx);
        decl
    }

    pub(super) fn messages(&mut self, y: &Yaml) -> Vec<MessageDecl> {
        let mut out = Vec::new();
        let base = self.base.clone();
        for (key, body) in self.ctx.entries(y, "messages") {
            if !is_identifier(&key.name) {
                self.ctx.error(
                    &key.at,
                    codes::E_BAD_ID,
                    format!("message name `{}` is not a valid identifier", key.name),
                );
                continue;
            }
            let what = format!("message `{}`", key.name);
            let Some(mut f) = self.ctx.fields(body, &what) else {
                continue;
            };
            let label = f
                .get("name")
                .and_then(|n| self.ctx.str(n, "name"))
                .map(str::to_string);
            let roles = f
                .get("roles")
                .map(|r| self.roles(r, "roles"))
                .unwrap_or_default();
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
            let scope = Scope::new(&base).with("message", form_ty);
            let set = f
                .get("set")
                .map(|s| self.assignments(s, &scope))
                .unwrap_or_default();
            let emit = f
                .get("emit")
                .map(|e| self.effects(e, &scope))
                .unwrap_or_default();
            let goto = f.get("goto").and_then(|g| self.node_ref(g, "goto"));
            let mut reschedule = Vec::new();
            if let Some(r) = f.get("reschedule") {
                for (deadline, duration) in self.ctx.entries(r, "reschedule") {
                    let index = self.deadline_ids.get(&deadline.name).copied();
                    if index.is_none() {
                        let hint =
                            hint_list(&deadline.name, self.deadline_ids.keys().map(String::as_str));
                        self.ctx.error_hint(
                            &deadline.at,
                            codes::E_UNKNOWN_DEADLINE,
                            format!("unknown deadline `{}`", deadline.name),
                            hint,
                        );
                    }
                    if let (Some(index), Some(d)) = (index, self.duration(duration, "reschedule")) {
                        reschedule.push((index, d));
                    }
                }
            }
            f.finish(self.ctx);
            out.push(MessageDecl {
                name: key.name.clone(),
                label,
                roles,
                form,
                set,
                emit,
                goto,
                reschedule,
            });
        }
        out
    }

    /// A schedule's start `data:`: each value a literal or an `=expression` in `scope`.
    fn schedule_data(
        &mut self,
        data: Option<&Yaml>,
        scope: &dyn TypeEnv,
    ) -> BTreeMap<String, ValueTemplate> {
        let mut out = BTreeMap::new();
        if let Some(d) = data {
            for (key, value) in self.ctx.entries(d, "data") {
                if let Some(t) = self.template(value, scope, None) {
                    out.insert(key.name.clone(), t);
                }
            }
        }
        out
    }

    /// One `schedules:` item: a cron schedule, or (`on: policy_changed`) a start on each
    /// policy day.
    pub(super) fn schedule(&mut self, y: &Yaml) -> Option<Schedule> {
        let mut f = self.ctx.fields(y, "a schedule")?;
        let id = f
            .required(self.ctx, "id")
            .and_then(|i| self.id(i, "schedule id"));
        if f.has("on") {
            let on = f.get("on").and_then(|o| {
                let text = self.ctx.str(o, "on")?.to_string();
                if text == ON_POLICY_CHANGED {
                    return Some(());
                }
                self.ctx.error_hint(
                    &o.at,
                    codes::E_BAD_VALUE,
                    format!("unknown schedule trigger `on: {text}`"),
                    "`on: policy_changed` (a start each time a policy takes effect), or a `cron:` instead",
                );
                None
            });
            if let Some(c) = f.get("cron") {
                self.ctx.error(
                    &c.at,
                    codes::E_BAD_VALUE,
                    "a schedule has `cron` or `on`, not both",
                );
            }
            let base = self.base.clone();
            let scope = Scope::new(&base)
                .with("effective_from", Type::Date)
                .with("policy", jiuzhu_rules::policy::Policy::value_type())
                .with(
                    "previous_policy",
                    jiuzhu_rules::policy::Policy::value_type(),
                );
            let data = self.schedule_data(f.get("data"), &scope);
            f.finish(self.ctx);
            on?;
            return Some(Schedule::Policy(PolicyStartDecl { id: id?, data }));
        }
        let cron = f.required(self.ctx, "cron").and_then(|c| {
            let text = self.ctx.str(c, "cron")?.to_string();
            match cron::Schedule::from_str(&text) {
                Ok(_) => Some(text),
                Err(err) => {
                    // The cron crate draws a caret diagram above its reason: keep the reason.
                    let reason = err.to_string();
                    let reason = reason.lines().last().unwrap_or_default().trim().to_string();
                    self.ctx.error_hint(
                        &c.at,
                        codes::E_BAD_CRON,
                        format!("bad cron expression `{text}`: {reason}"),
                        "six or seven fields: sec min hour day-of-month month day-of-week [year]",
                    );
                    None
                }
            }
        });
        let base = self.base.clone();
        let data = self.schedule_data(f.get("data"), &Scope::new(&base));
        f.finish(self.ctx);
        Some(Schedule::Cron(ScheduleDecl {
            id: id?,
            cron: cron?,
            data,
        }))
    }
}

/// One read `schedules:` item.
pub(super) enum Schedule {
    Cron(ScheduleDecl),
    Policy(PolicyStartDecl),
}
