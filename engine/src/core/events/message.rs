//! Named messages: a waiting receive node or task handler first, else the process's own.
//! The data is checked at the door (`door.rs`) before the form's own checks.

use crate::core::*;

impl Run<'_> {
    pub(in crate::core) fn message(
        &mut self,
        name: &str,
        actor: Option<&Actor>,
        data: &BTreeMap<String, Value>,
    ) -> Result<Option<String>, StepError> {
        // A receive node, or an open task with an interrupting `on:` handler,
        // waiting for this message takes it first.
        let def = self.def;
        let handlers_of = |idx: NodeIdx| match &def.nodes[idx].kind {
            NodeKind::Receive(recv) => Some(recv.handlers.as_slice()),
            NodeKind::Task(task) => Some(task.on.as_slice()),
            NodeKind::Batch(batch) => Some(std::slice::from_ref(&batch.done)),
            _ => None,
        };
        let waiting = self.st.tokens.iter().find_map(|token| {
            let idx = def.node_index(&token.node)?;
            let handler = handlers_of(idx)?.iter().find(|h| h.name == name)?;
            Some((token.id, idx, handler))
        });
        if let Some((token, node_idx, handler)) = waiting {
            self.authorize_message(name, &handler.roles, actor)?;
            let node_id = def.nodes[node_idx].id.clone();
            self.fields_door(&handler.form, data)?;
            let payload = self.check_message_form(&handler.form, data, &node_id)?;
            // An interrupted task (all of it, for a multi-instance node) is cancelled.
            for i in (0..self.st.tasks.len()).rev() {
                if self.st.tasks[i].token == token {
                    self.close_task(i, true);
                }
            }
            self.cancel_node_timers(token);
            self.remove_token(token);
            // A batch's report is `batch` to its completion, any other message `message`.
            let name = match def.nodes[node_idx].kind {
                NodeKind::Batch(_) => "batch",
                _ => "message",
            };
            self.finish(&handler.completion, token, &node_id, &[(name, &payload)])?;
            return Ok(Some(node_id));
        }
        let Some(decl) = self.def.message(name) else {
            return Err(StepError::NotFound(format!(
                "no step of {} waits for message {name}",
                self.st.id
            )));
        };
        self.authorize_message(name, &decl.roles, actor)?;
        self.fields_door(&decl.form, data)?;
        let payload = self.check_message_form(&decl.form, data, name)?;
        let extras = [("message", &payload)];
        self.assign(&decl.set, &extras, name)?;
        self.emit(&decl.emit, &extras, name)?;
        for (deadline, duration) in &decl.reschedule {
            self.reschedule_deadline(*deadline, duration)?;
        }
        if let Some(target) = decl.goto {
            // Interrupting: every open task, waiting token and node timer goes.
            for i in (0..self.st.tasks.len()).rev() {
                self.close_task(i, true);
            }
            let node_timers: Vec<String> = self
                .st
                .timers
                .iter()
                .filter(|t| matches!(t.kind, TimerKind::Node { .. }))
                .map(|t| t.id.clone())
                .collect();
            for id in node_timers {
                self.cancel_timer(&id);
            }
            self.st.tokens.clear();
            self.st.joins.clear();
            let token = self.new_token(target);
            self.enter(target, token)?;
        }
        Ok(None)
    }

    pub(in crate::core) fn authorize_message(
        &self,
        name: &str,
        roles: &[String],
        actor: Option<&Actor>,
    ) -> Result<(), StepError> {
        if roles.is_empty() {
            return Ok(());
        }
        let Some(actor) = actor else {
            return Err(StepError::Forbidden(format!(
                "message {name} needs a sender with role {}",
                roles.join(" or ")
            )));
        };
        if !roles.iter().any(|r| actor.roles.contains(r)) {
            return Err(StepError::Forbidden(format!(
                "message {name} needs role {}; {} has {}",
                roles.join(" or "),
                actor.user,
                actor.roles.join(", ")
            )));
        }
        if !unit_contains(&actor.unit, &self.st.unit) {
            return Err(StepError::Forbidden(format!(
                "case {} belongs to {}; {} acts for {}",
                self.st.id, self.st.unit, actor.user, actor.unit
            )));
        }
        Ok(())
    }

    pub(in crate::core) fn check_message_form(
        &self,
        fields: &[crate::lang::model::FieldDecl],
        data: &BTreeMap<String, Value>,
        node_id: &str,
    ) -> Result<Value, StepError> {
        let scope = self.scope(&[]);
        form::check(fields, data, &scope, "message").map_err(|e| self.eval_or_invalid(e, node_id))
    }
}
