//! Nodes: the heads (`id`, `type`) read first so references resolve, then each
//! node's body, its completion, its `next` and its timers.

use super::*;

impl Compiler<'_, '_> {
    /// First pass over the nodes: ids and types, so references resolve in any order.
    pub(super) fn node_heads<'y>(&mut self, items: &'y [Yaml]) -> Vec<NodeHead<'y>> {
        let mut heads = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let YamlValue::Map(entries) = &item.value else {
                self.ctx.wrong_type(item, "a mapping", "a node");
                // Keep indexes aligned with the list: a placeholder head.
                heads.push(NodeHead {
                    id: String::new(),
                    at: item.at,
                    kind: String::new(),
                    yaml: item,
                });
                continue;
            };
            let get = |k: &str| {
                entries
                    .iter()
                    .find(|(key, _)| key.name == k)
                    .map(|(_, v)| v)
            };
            let id = match get("id") {
                Some(y) => self.id(y, "node id").unwrap_or_default(),
                None => {
                    self.ctx
                        .error(&item.at, codes::E_MISSING_KEY, "a node needs `id`");
                    String::new()
                }
            };
            let at = get("id").map_or(item.at, |y| y.at);
            if !id.is_empty() {
                if self.node_ids.contains_key(&id) {
                    self.ctx.error_hint(
                        &at,
                        codes::E_DUPLICATE_ID,
                        format!("duplicate node id `{id}`"),
                        "node ids must be unique within a process",
                    );
                } else {
                    self.node_ids.insert(id.clone(), index);
                }
            }
            let kind = match get("type") {
                Some(y) => match self.ctx.str(y, "node type") {
                    Some(t) if NODE_TYPES.contains(&t) => t.to_string(),
                    Some(t) => {
                        let hint = hint_list(t, NODE_TYPES.iter().copied());
                        self.ctx.error_hint(
                            &y.at,
                            codes::E_UNKNOWN_TYPE,
                            format!("unknown node type `{t}`"),
                            hint,
                        );
                        String::new()
                    }
                    None => String::new(),
                },
                None => {
                    self.ctx.error(
                        &item.at,
                        codes::E_MISSING_KEY,
                        format!("node `{id}` needs `type`"),
                    );
                    String::new()
                }
            };
            heads.push(NodeHead {
                id,
                at,
                kind,
                yaml: item,
            });
        }
        heads
    }

    pub(super) fn node(&mut self, index: NodeIdx, head: &NodeHead<'_>) -> Node {
        let placeholder = Node {
            id: head.id.clone(),
            name: head.id.clone(),
            kind: NodeKind::Compute,
            completion: Completion::default(),
        };
        if head.kind.is_empty() {
            // Its problem (not a mapping, no or unknown type) is already reported.
            return placeholder;
        }
        let Some(mut f) = self.ctx.fields(head.yaml, &format!("node `{}`", head.id)) else {
            return placeholder;
        };
        f.get("id");
        f.get("type");
        let name = f
            .get("name")
            .and_then(|y| self.ctx.str(y, "name"))
            .map_or_else(|| head.id.clone(), str::to_string);
        let base = self.base.clone();
        let (kind, completion) = match head.kind.as_str() {
            "task" => self.task(&mut f, &base),
            "rule" => self.rule(&mut f, &base),
            "compute" => {
                let scope = Scope::new(&base);
                (NodeKind::Compute, self.completion(&mut f, &scope, true))
            }
            "choice" => {
                let scope = Scope::new(&base);
                let next = self.next(&mut f, &scope, true);
                (
                    NodeKind::Choice,
                    Completion {
                        next,
                        ..Completion::default()
                    },
                )
            }
            "parallel" => {
                let branches = match f.required(self.ctx, "branches") {
                    Some(y) => {
                        let ids = self.ctx.str_list(y, "branches");
                        if ids.len() < 2 {
                            self.ctx.error(
                                &y.at,
                                codes::E_BAD_VALUE,
                                "a parallel node needs at least two branches",
                            );
                        }
                        ids.iter()
                            .filter_map(|(id, at)| self.resolve_node(id, at))
                            .collect()
                    }
                    None => Vec::new(),
                };
                (NodeKind::Parallel { branches }, Completion::default())
            }
            "join" => {
                let split = f.required(self.ctx, "of").and_then(|y| {
                    let split = self.node_ref(y, "of")?;
                    Some((split, y.at))
                });
                let scope = Scope::new(&base);
                let completion = self.completion(&mut f, &scope, true);
                match split {
                    Some((split, at)) => {
                        self.joins.push((index, split, at));
                        (NodeKind::Join { split, expected: 0 }, completion)
                    }
                    None => (NodeKind::Compute, completion),
                }
            }
            "timer" => {
                let scope = Scope::new(&base);
                let spec = self.timer_spec(&mut f, &scope, "wait");
                let completion = self.completion(&mut f, &scope, true);
                (
                    NodeKind::Timer(spec.unwrap_or(TimerSpec::After(Duration::working_days(0)))),
                    completion,
                )
            }
            "batch" => self.batch(&mut f, &base),
            "receive" => (
                NodeKind::Receive(self.receive(&mut f, &base)),
                Completion::default(),
            ),
            "end" => {
                let scope = Scope::new(&base);
                let status = match f.get("status") {
                    Some(y) => match self.ctx.str(y, "status") {
                        Some("completed") | None => EndStatus::Completed,
                        Some("terminated") => EndStatus::Terminated,
                        Some(other) => {
                            self.ctx.error(
                                &y.at,
                                codes::E_BAD_VALUE,
                                format!("end status `{other}` must be `completed` or `terminated`"),
                            );
                            EndStatus::Completed
                        }
                    },
                    None => EndStatus::Completed,
                };
                (
                    NodeKind::End { status },
                    self.completion(&mut f, &scope, false),
                )
            }
            _ => (NodeKind::Compute, Completion::default()),
        };
        f.finish(self.ctx);
        Node {
            id: head.id.clone(),
            name,
            kind,
            completion,
        }
    }

    /// `set`, `emit`, `outcome` and (unless an end node) `next`.
    pub(super) fn completion(
        &mut self,
        f: &mut Fields<'_>,
        scope: &dyn TypeEnv,
        has_next: bool,
    ) -> Completion {
        let set = f
            .get("set")
            .map(|y| self.assignments(y, scope))
            .unwrap_or_default();
        let emit = f
            .get("emit")
            .map(|y| self.effects(y, scope))
            .unwrap_or_default();
        let outcome = f
            .get("outcome")
            .and_then(|y| self.ctx.str(y, "outcome"))
            .map(str::to_string);
        let next = if has_next {
            self.next(f, scope, false)
        } else {
            Vec::new()
        };
        Completion {
            set,
            emit,
            outcome,
            next,
        }
    }

    /// `next: id` or a list of `{if, to}` ending with a default `{to}`.
    pub(super) fn next(
        &mut self,
        f: &mut Fields<'_>,
        scope: &dyn TypeEnv,
        conditional_only: bool,
    ) -> Vec<Transition> {
        let Some(y) = f.required(self.ctx, "next") else {
            return Vec::new();
        };
        if let YamlValue::Str(id) = &y.value {
            if conditional_only {
                self.ctx.error_hint(
                    &y.at,
                    codes::E_WRONG_TYPE,
                    "a choice needs a list of `{if, to}` transitions",
                    "for an unconditional step use a compute node or point `next` past the choice",
                );
            }
            return self
                .resolve_node(id, &y.at)
                .map(|target| {
                    vec![Transition {
                        condition: None,
                        target,
                    }]
                })
                .unwrap_or_default();
        }
        let items = self.ctx.seq(y, "next");
        let mut out = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        let mut has_default = false;
        for (index, item) in items.iter().enumerate() {
            let Some(mut t) = self.ctx.fields(item, "a transition") else {
                continue;
            };
            let condition_yaml = t.get("if");
            let target = t
                .required(self.ctx, "to")
                .and_then(|to| self.node_ref(to, "to"));
            t.finish(self.ctx);
            let condition = match condition_yaml {
                Some(c) => {
                    if let YamlValue::Str(s) = &c.value {
                        conditions.push(s.clone());
                    }
                    self.expr(c, scope, Expect::Bool, "if")
                }
                None => {
                    has_default = true;
                    if index + 1 != items.len() {
                        self.ctx.error(
                            &item.at,
                            codes::E_BAD_VALUE,
                            "the default transition (without `if`) must come last",
                        );
                    }
                    None
                }
            };
            if let Some(target) = target {
                out.push(Transition { condition, target });
            }
        }
        if items.is_empty() {
            self.ctx
                .error(&y.at, codes::E_MISSING_KEY, "`next` lists no transition");
        } else if !has_default && !graph::exhaustive(&conditions, scope) {
            self.ctx.error_hint(
                &y.at,
                codes::E_NO_DEFAULT,
                "these conditions may all be false, and there is no default transition",
                "end the list with a default `{to: ID}` (no `if`)",
            );
        }
        out
    }

    pub(super) fn timer_spec(
        &mut self,
        f: &mut Fields<'_>,
        scope: &dyn TypeEnv,
        after_key: &'static str,
    ) -> Option<TimerSpec> {
        let after = f.get(after_key);
        let until = f.get("until");
        match (after, until) {
            (Some(a), None) => self.duration(a, after_key).map(TimerSpec::After),
            (None, Some(u)) => {
                let expr = self.expr(u, scope, Expect::Any, "until")?;
                if !matches!(expr.result_type(), Type::Date | Type::DateTime | Type::Any) {
                    self.ctx.error(
                        &u.at,
                        codes::E_TYPE,
                        format!(
                            "`until` must be a date or datetime, not {}",
                            expr.result_type()
                        ),
                    );
                    return None;
                }
                Some(TimerSpec::Until(expr))
            }
            (Some(_), Some(u)) => {
                self.ctx.error(
                    &u.at,
                    codes::E_BAD_VALUE,
                    format!("give either `{after_key}` or `until`, not both"),
                );
                None
            }
            (None, None) => {
                self.ctx.error(
                    &f.at,
                    codes::E_MISSING_KEY,
                    format!(
                        "a timer needs `{after_key}` (a duration) or `until` (a date expression)"
                    ),
                );
                None
            }
        }
    }
}
