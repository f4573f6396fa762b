//! Completing a user task: which task, who may act on it, the form, votes, moving on.

use crate::core::events::handover::may_work_on;
use crate::core::*;

impl Run<'_> {
    pub(in crate::core) fn find_task(
        &self,
        task: &TaskRef,
        actor: &Actor,
    ) -> Result<usize, StepError> {
        match task {
            TaskRef::Id(id) => self
                .st
                .tasks
                .iter()
                .position(|t| &t.id == id)
                .ok_or_else(|| StepError::NotFound(format!("no open task {id}"))),
            TaskRef::Node(node) => {
                let candidates: Vec<usize> = self
                    .st
                    .tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| &t.node == node)
                    .map(|(i, _)| i)
                    .collect();
                if candidates.is_empty() {
                    return Err(StepError::NotFound(format!("no open task of node {node}")));
                }
                // Prefer the task assigned to or claimed by this actor, then an unassigned one.
                candidates
                    .iter()
                    .copied()
                    .find(|&i| {
                        let t = &self.st.tasks[i];
                        t.assignee.as_deref() == Some(&actor.user)
                            || t.claimed_by.as_deref() == Some(&actor.user)
                    })
                    .or_else(|| {
                        candidates
                            .iter()
                            .copied()
                            .find(|&i| self.st.tasks[i].assignee.is_none())
                    })
                    .or_else(|| candidates.first().copied())
                    .ok_or_else(|| StepError::NotFound(format!("no open task of node {node}")))
            }
        }
    }

    pub(in crate::core) fn authorize_task(
        &self,
        idx: usize,
        actor: &Actor,
    ) -> Result<(), StepError> {
        let task = &self.st.tasks[idx];
        may_work_on(task, actor)?;
        if let Some(assignee) = &task.assignee
            && assignee != &actor.user
        {
            return Err(StepError::Forbidden(format!(
                "task {} is assigned to {assignee}",
                task.node
            )));
        }
        if let Some(claimer) = &task.claimed_by
            && claimer != &actor.user
        {
            return Err(StepError::Conflict(format!(
                "task {} is claimed by {claimer}",
                task.node
            )));
        }
        self.check_separation(idx, actor)
    }

    /// Separation of duties: `actor` completed none of the nodes this task must be kept apart from.
    pub(in crate::core) fn check_separation(
        &self,
        idx: usize,
        actor: &Actor,
    ) -> Result<(), StepError> {
        let task = &self.st.tasks[idx];
        let node_idx = self.node_idx(&task.node)?;
        if let NodeKind::Task(decl) = &self.def.nodes[node_idx].kind {
            for &other in &decl.separate_from {
                let other_id = &self.def.nodes[other].id;
                if self
                    .st
                    .completed_by
                    .get(other_id)
                    .is_some_and(|users| users.contains(&actor.user))
                {
                    return Err(StepError::SeparationOfDuties(format!(
                        "{} completed {other_id} and may not also complete {}",
                        actor.user, task.node
                    )));
                }
            }
        }
        Ok(())
    }

    pub(in crate::core) fn complete_task(
        &mut self,
        idx: usize,
        actor: &Actor,
        data: &BTreeMap<String, Value>,
    ) -> Result<(), StepError> {
        self.authorize_task(idx, actor)?;
        let task = self.st.tasks[idx].clone();
        let node_idx = self.node_idx(&task.node)?;
        let NodeKind::Task(decl) = &self.def.nodes[node_idx].kind else {
            return Err(StepError::NotFound(format!("{} is not a task", task.node)));
        };
        // Personal data and money in the form's fields, every problem at once.
        self.fields_door(&decl.form, data)?;
        let form = {
            let scope = self.scope(&[]);
            form::check(&decl.form, data, &scope, "form")
                .map_err(|e| self.eval_or_invalid(e, &task.node))?
        };
        self.st
            .completed_by
            .entry(task.node.clone())
            .or_default()
            .push(actor.user.clone());
        self.close_task(idx, false);

        if let Some(multi) = &decl.multi {
            let mut vote = match &form {
                Value::Object(map) => map.clone(),
                _ => BTreeMap::new(),
            };
            vote.insert("by".into(), Value::Str(actor.user.clone()));
            let list = self
                .st
                .vars
                .entry(multi.collect.clone())
                .or_insert(Value::List(Vec::new()));
            match list {
                Value::List(items) => items.push(Value::Object(vote)),
                other => *other = Value::List(vec![Value::Object(vote)]),
            }
            let done = self.eval_bool(&multi.complete_when, &[], &task.node)?;
            if !done {
                return Ok(());
            }
            // Decided: the remaining votes are cancelled; a late vote finds no task.
            let rest: Vec<usize> = (0..self.st.tasks.len())
                .filter(|&i| self.st.tasks[i].token == task.token)
                .collect();
            for i in rest.into_iter().rev() {
                self.close_task(i, true);
            }
        } else if self.st.tasks.iter().any(|t| t.token == task.token) {
            return Ok(());
        }
        self.remove_token(task.token);
        self.complete_node(node_idx, task.token, &[("form", &form)])
    }
}
