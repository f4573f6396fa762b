//! Walking the graph: entering each kind of node, completing a node, the end of a case.

use crate::core::*;
use crate::lang::model::{Node, ReceiveDecl, RuleDecl, TaskDecl};

impl<'a> Run<'a> {
    /// Enters a node with a token; runs on until every token waits or the case ends.
    ///
    /// Entering a node may enter the next, and that the one after: rather than recursing
    /// (a loop of compute nodes would overflow the stack long before the entry budget
    /// stops it), each entry and what follows it goes on the step's work stack, and the
    /// outermost call works the stack off. The stack is last in, first out, so the order
    /// is the one recursion had: a node's whole downstream runs before what its entry
    /// does afterwards (arming deadlines, ending the case).
    pub(in crate::core) fn enter(
        &mut self,
        node_idx: NodeIdx,
        token: u64,
    ) -> Result<(), StepError> {
        self.work.push(Work::Enter(node_idx, token));
        self.work_off()
    }

    /// Works the stack off, unless an outer call is already doing so.
    fn work_off(&mut self) -> Result<(), StepError> {
        if self.working {
            return Ok(());
        }
        self.working = true;
        let result = self.work_loop();
        self.working = false;
        if result.is_err() {
            self.work.clear();
        }
        result
    }

    fn work_loop(&mut self) -> Result<(), StepError> {
        while let Some(work) = self.work.pop() {
            match work {
                Work::Enter(node_idx, token) => self.enter_one(node_idx, token)?,
                Work::ArmDeadlines(node_idx) => self.arm_deadlines_started_at(node_idx)?,
                Work::End(status) => self.end(status),
            }
        }
        Ok(())
    }

    /// Enters one node; what it enters next goes on the work stack.
    fn enter_one(&mut self, node_idx: NodeIdx, token: u64) -> Result<(), StepError> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES_PER_STEP {
            return Err(StepError::Incident {
                node: self.def.nodes[node_idx].id.clone(),
                message: format!(
                    "more than {MAX_ENTRIES_PER_STEP} nodes entered in one step: a loop that never waits"
                ),
            });
        }
        if self.st.status != Status::Active {
            return Ok(());
        }
        let def = self.def;
        let node = &def.nodes[node_idx];
        let node_id = node.id.clone();
        match &node.kind {
            NodeKind::Task(decl) => self.enter_task(node, decl, token),
            NodeKind::Rule(decl) => self.enter_rule(node_idx, decl, token),
            NodeKind::Compute | NodeKind::Choice => self.complete_node(node_idx, token, &[]),
            NodeKind::Parallel { branches } => {
                // Tokens in branch order; the stack takes them last first, so the
                // first branch runs first.
                let entries: Vec<(NodeIdx, u64)> = branches
                    .iter()
                    .map(|&branch| (branch, self.new_token(branch)))
                    .collect();
                for (branch, t) in entries.into_iter().rev() {
                    self.work.push(Work::Enter(branch, t));
                }
                Ok(())
            }
            NodeKind::Join { expected, .. } => {
                let expected = *expected;
                let count = self.st.joins.entry(node_id.clone()).or_insert(0);
                *count += 1;
                if *count >= expected {
                    self.st.joins.remove(&node_id);
                    self.complete_node(node_idx, token, &[])
                } else {
                    Ok(())
                }
            }
            NodeKind::Timer(spec) => self.enter_timer(&node.id, spec, token),
            NodeKind::Receive(recv) => self.enter_receive(&node.id, recv, token),
            NodeKind::Batch(batch) => self.enter_batch(&node.id, batch, token),
            NodeKind::End { status } => {
                self.work.push(Work::End(*status));
                self.finish(&node.completion, token, &node_id, &[])
            }
        }
    }

    /// A task node: one open task (or one per voter), its due time and reminder timers.
    fn enter_task(
        &mut self,
        node: &'a Node,
        decl: &'a TaskDecl,
        token: u64,
    ) -> Result<(), StepError> {
        let node_id = node.id.clone();
        let unit = match &decl.unit {
            Some(expr) => self.eval_string(expr, &[], &node_id)?,
            None => self.st.unit.clone(),
        };
        let (due_at, provisional) = match &decl.deadline {
            Some(deadline) => {
                let (due, provisional) = self.add_marked(&deadline.due, self.now, &node_id)?;
                (Some(due), provisional)
            }
            None => (None, false),
        };
        let assignees: Vec<Option<String>> = if let Some(multi) = &decl.multi {
            let items = self.eval(&multi.for_each, &[], &node_id)?;
            let Value::List(items) = items else {
                return Err(incident(&node_id, "for_each did not yield a list"));
            };
            if items.is_empty() {
                return Err(incident(
                    &node_id,
                    "for_each yielded an empty list: nobody to act",
                ));
            }
            self.st
                .vars
                .insert(multi.collect.clone(), Value::List(Vec::new()));
            items
                .into_iter()
                .map(|item| match item {
                    Value::Str(user) => Ok(Some(user)),
                    other => Err(incident(
                        &node_id,
                        &format!("for_each item {other} is not a user id"),
                    )),
                })
                .collect::<Result<_, _>>()?
        } else if let Some(expr) = &decl.assignee {
            vec![Some(self.eval_string(expr, &[], &node_id)?)]
        } else {
            vec![None]
        };
        self.st.tokens.push(Token {
            id: token,
            node: node_id.clone(),
        });
        for assignee in assignees {
            let id = self.st.next_id('t');
            let task = OpenTask {
                id: id.clone(),
                node: node_id.clone(),
                label: node.name.clone(),
                token,
                roles: decl.roles.clone(),
                unit: unit.clone(),
                assignee,
                claimed_by: None,
                opened_at: self.now,
                due_at,
                provisional,
            };
            self.st.tasks.push(task.clone());
            self.refresh_builtins();
            self.effects.push(Effect::OpenTask(task));
            if let (Some(deadline), Some(due)) = (&decl.deadline, due_at) {
                self.schedule_task_timers(&id, deadline, due, provisional, &node_id)?;
            }
        }
        Ok(())
    }

    /// A rule node: the assessment program runs now, its result is in scope for `set`.
    fn enter_rule(
        &mut self,
        node_idx: NodeIdx,
        decl: &'a RuleDecl,
        token: u64,
    ) -> Result<(), StepError> {
        let node_id = self.def.nodes[node_idx].id.clone();
        let mut inputs = BTreeMap::new();
        for (name, expr) in &decl.inputs {
            inputs.insert(name.clone(), self.eval(expr, &[], &node_id)?);
        }
        for (name, default) in [
            ("household", "household"),
            ("area", "area"),
            ("request", "request"),
        ] {
            if !inputs.contains_key(name)
                && let Some(v) = self.st.vars.get(default)
            {
                inputs.insert(name.to_string(), v.clone());
            }
        }
        inputs
            .entry("as_of".into())
            .or_insert(Value::Date(self.now.date_naive()));
        inputs.insert("unit".into(), Value::Str(self.st.unit.clone()));
        match self.ctx.assessor.assess(&decl.program, &inputs) {
            Ok(result) => self.complete_node(node_idx, token, &[("result", &result)]),
            Err(error) => {
                let message = format!("assessment {}: {error}", decl.program);
                self.park_on_incident(node_id, token, message);
                Ok(())
            }
        }
    }

    /// A timer node: the token waits for its timer.
    fn enter_timer(
        &mut self,
        node_id: &str,
        spec: &'a TimerSpec,
        token: u64,
    ) -> Result<(), StepError> {
        let node_id = node_id.to_string();
        let (due, counted_from) = self.node_timer_due(spec, &node_id)?;
        self.st.tokens.push(Token {
            id: token,
            node: node_id,
        });
        self.schedule_node_timer(due, token, counted_from);
        Ok(())
    }

    /// A receive node: the token waits for a message, or for its timeout.
    fn enter_receive(
        &mut self,
        node_id: &str,
        recv: &'a ReceiveDecl,
        token: u64,
    ) -> Result<(), StepError> {
        let node_id = node_id.to_string();
        self.st.tokens.push(Token {
            id: token,
            node: node_id.clone(),
        });
        if let Some((spec, _)) = &recv.timeout {
            let (due, counted_from) = self.node_timer_due(spec, &node_id)?;
            self.schedule_node_timer(due, token, counted_from);
        }
        Ok(())
    }

    /// Runs a node's completion (assignments, effects, outcome, deadlines) and moves on.
    pub(in crate::core) fn complete_node(
        &mut self,
        node_idx: NodeIdx,
        token: u64,
        extras: &[(&str, &Value)],
    ) -> Result<(), StepError> {
        let node_id = self.def.nodes[node_idx].id.clone();
        let completion = &self.def.nodes[node_idx].completion;
        for i in 0..self.def.deadlines.len() {
            let decl = &self.def.deadlines[i];
            if decl.stop.contains(&node_idx) {
                self.disarm_deadline(&decl.id.clone());
            }
        }
        // Armed once what follows the node has run, as when entry recursed.
        self.work.push(Work::ArmDeadlines(node_idx));
        self.finish(completion, token, &node_id, extras)?;
        self.work_off()
    }

    /// Arms the deadlines that start when `node_idx` completes (unless armed already).
    fn arm_deadlines_started_at(&mut self, node_idx: NodeIdx) -> Result<(), StepError> {
        for i in 0..self.def.deadlines.len() {
            if self.def.deadlines[i].start == Some(node_idx)
                && !self
                    .st
                    .deadlines
                    .iter()
                    .any(|d| d.id == self.def.deadlines[i].id)
            {
                self.arm_deadline(i)?;
            }
        }
        Ok(())
    }

    pub(in crate::core) fn finish(
        &mut self,
        completion: &Completion,
        token: u64,
        node_id: &str,
        extras: &[(&str, &Value)],
    ) -> Result<(), StepError> {
        self.assign(&completion.set, extras, node_id)?;
        self.emit(&completion.emit, extras, node_id)?;
        if let Some(outcome) = &completion.outcome {
            self.st.outcome = Some(outcome.clone());
            self.refresh_builtins();
        }
        for transition in &completion.next {
            let taken = match &transition.condition {
                None => true,
                Some(cond) => self.eval_bool(cond, extras, node_id)?,
            };
            if taken {
                return self.enter(transition.target, token);
            }
        }
        if completion.next.is_empty() {
            return Ok(());
        }
        Err(incident(
            node_id,
            "no condition of `next` held and there is no default",
        ))
    }

    pub(in crate::core) fn end(&mut self, status: EndStatus) {
        self.st.status = match status {
            EndStatus::Completed => Status::Completed,
            EndStatus::Terminated => Status::Terminated,
        };
        for i in (0..self.st.tasks.len()).rev() {
            self.close_task(i, true);
        }
        let timers: Vec<String> = self.st.timers.iter().map(|t| t.id.clone()).collect();
        for id in timers {
            self.cancel_timer(&id);
        }
        for deadline in &mut self.st.deadlines {
            deadline.active = false;
        }
        self.st.tokens.clear();
        self.st.joins.clear();
        self.tell_parent_of_end();
    }

    /// A case started with `start_process … on_end: NAME` sends its parent message `NAME`
    /// when it ends, with its id, process, status and outcome.
    fn tell_parent_of_end(&mut self) {
        let Some(ParentLink {
            case,
            on_end: Some(name),
        }) = self.st.parent.clone()
        else {
            return;
        };
        let outcome = self.st.outcome.clone().map_or(Value::Null, Value::Str);
        let data = BTreeMap::from([
            ("case".to_string(), Value::Str(self.st.id.clone())),
            ("process".to_string(), Value::Str(self.st.process.clone())),
            (
                "status".to_string(),
                Value::Str(self.st.status.as_str().to_string()),
            ),
            ("outcome".to_string(), outcome),
        ]);
        // Built typed: the fields are the schema's own, so nothing here can fail to type.
        let message = crate::effects::typed::Message {
            name,
            case: Some(case),
            process: None,
            key: None,
            data,
            extra: BTreeMap::new(),
        };
        let outward = crate::effects::Outward {
            id: self.st.next_id('e'),
            instance: self.st.id.clone(),
            effect: crate::effects::TypedEffect::Message(message),
        };
        self.effects.push(super::effect::Effect::Outward(outward));
    }

    pub(in crate::core) fn node_idx(&self, id: &str) -> Result<NodeIdx, StepError> {
        self.def
            .node_index(id)
            .ok_or_else(|| incident(id, "the state names a node this definition does not have"))
    }

    pub(in crate::core) fn new_token(&mut self, _node: NodeIdx) -> u64 {
        self.st.next_seq()
    }

    pub(in crate::core) fn remove_token(&mut self, token: u64) {
        self.st.tokens.retain(|t| t.id != token);
    }

    pub(in crate::core) fn close_task(&mut self, idx: usize, cancelled: bool) {
        let task = self.st.tasks.remove(idx);
        self.refresh_builtins();
        let timers: Vec<String> = self
            .st
            .timers
            .iter()
            .filter(|t| match &t.kind {
                TimerKind::TaskReminder { task: id } | TimerKind::TaskDue { task: id } => {
                    id == &task.id
                }
                _ => false,
            })
            .map(|t| t.id.clone())
            .collect();
        for timer in timers {
            self.cancel_timer(&timer);
        }
        self.effects.push(Effect::CloseTask {
            task_id: task.id,
            cancelled,
        });
    }
}
