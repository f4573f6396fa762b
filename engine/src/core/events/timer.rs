//! A timer firing: node timers, task reminders and escalations, deadline reminders and overdue.

use crate::core::*;

impl Run<'_> {
    pub(in crate::core) fn timer_fired(
        &mut self,
        timer_id: &str,
    ) -> Result<Option<String>, StepError> {
        let Some(pos) = self.st.timers.iter().position(|t| t.id == timer_id) else {
            return Err(StepError::NotFound(format!("no pending timer {timer_id}")));
        };
        let timer = self.st.timers.remove(pos);
        match timer.kind {
            TimerKind::Node { token } => {
                let Some(node_id) = self
                    .st
                    .tokens
                    .iter()
                    .find(|t| t.id == token)
                    .map(|t| t.node.clone())
                else {
                    return Ok(None);
                };
                let node_idx = self.node_idx(&node_id)?;
                self.remove_token(token);
                match &self.def.nodes[node_idx].kind {
                    NodeKind::Timer(_) => self.complete_node(node_idx, token, &[])?,
                    NodeKind::Receive(recv) => {
                        if let Some((_, completion)) = &recv.timeout {
                            self.finish(completion, token, &node_id, &[])?;
                        }
                    }
                    _ => {}
                }
                Ok(Some(node_id))
            }
            TimerKind::TaskReminder { task } => {
                let Some(open) = self.st.task(&task).cloned() else {
                    return Ok(None);
                };
                let fields = BTreeMap::from([
                    ("template".to_string(), Value::Str("task_reminder".into())),
                    (
                        "to_role".to_string(),
                        Value::List(open.roles.iter().cloned().map(Value::Str).collect()),
                    ),
                    ("task".to_string(), Value::Str(open.node.clone())),
                    ("task_label".to_string(), Value::Str(open.label.clone())),
                    (
                        "due_at".to_string(),
                        open.due_at.map(Value::DateTime).unwrap_or(Value::Null),
                    ),
                ]);
                self.push_outward(
                    crate::lang::model::EffectKind::Notification,
                    fields,
                    &open.node,
                )?;
                Ok(Some(open.node))
            }
            TimerKind::TaskDue { task } => {
                let Some(open) = self.st.task(&task).cloned() else {
                    return Ok(None);
                };
                let node_idx = self.node_idx(&open.node)?;
                if let NodeKind::Task(decl) = &self.def.nodes[node_idx].kind
                    && let Some(target) = decl.deadline.as_ref().and_then(|d| d.escalate_to.clone())
                {
                    let fields = BTreeMap::from([
                        ("to_role".to_string(), Value::Str(target)),
                        ("task".to_string(), Value::Str(open.node.clone())),
                        ("task_label".to_string(), Value::Str(open.label.clone())),
                        (
                            "reason".to_string(),
                            Value::Str(format!("{} 超过办理时限", open.label)),
                        ),
                    ]);
                    self.push_outward(
                        crate::lang::model::EffectKind::Escalation,
                        fields,
                        &open.node,
                    )?;
                }
                Ok(Some(open.node))
            }
            TimerKind::DeadlineReminder { deadline } => {
                let Some(i) = self.def.deadlines.iter().position(|d| d.id == deadline) else {
                    return Ok(None);
                };
                let decl = &self.def.deadlines[i];
                self.emit(&decl.remind, &[], &decl.id)?;
                Ok(None)
            }
            TimerKind::DeadlineDue { deadline } => {
                let Some(i) = self.def.deadlines.iter().position(|d| d.id == deadline) else {
                    return Ok(None);
                };
                if let Some(state) = self.st.deadlines.iter_mut().find(|d| d.id == deadline) {
                    state.overdue = true;
                }
                let decl = &self.def.deadlines[i];
                self.assign(&decl.overdue_set, &[], &decl.id)?;
                self.emit(&decl.overdue_emit, &[], &decl.id)?;
                Ok(None)
            }
        }
    }
}
