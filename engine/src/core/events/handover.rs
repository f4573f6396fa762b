//! Who holds a task: claim, unclaim, reassign and delegate, each an ordinary step.
//!
//! Rules (the same in production and in `jiuzhu test`, because they are decided here):
//! - **claim**: the actor may complete the task (a candidate role in a unit covering the
//!   task's unit, not reserved for someone else, no separation-of-duties bar). Claiming a
//!   task one already holds changes nothing but is still recorded.
//! - **unclaim**: the holder, or a supervisor of the task's unit, puts a claimed task back
//!   into every candidate's queue. An explicit assignee (a vote) is never removed.
//! - **reassign**: a supervisor of the task's unit hands the task to another user.
//! - **delegate**: the holder (or, for an unclaimed task, any user who could claim it)
//!   hands it to a named colleague, e.g. while on leave.
//!
//! A supervisor holds `admin` or a role whose id ends in `_head` (the org's unit heads),
//! in a unit covering the task's unit. The target of a reassign or delegate must be able
//! to complete the task: one of its roles in a unit covering it, and no separation-of-duties
//! bar; it becomes the task's claimant (and, for a task with an explicit assignee, its
//! assignee too). Separation of duties is checked again at completion.

use crate::core::{Actor, Effect, OpenTask, Run, StepError, TaskRef, unit_contains};

/// The user holds one of the task's roles in a unit covering the task's unit: who may
/// work on a task, whether they act themselves or are handed it.
pub(in crate::core) fn may_work_on(task: &OpenTask, user: &Actor) -> Result<(), StepError> {
    if !task.roles.iter().any(|r| user.roles.contains(r)) {
        return Err(StepError::Forbidden(format!(
            "task {} needs role {}; {} has {}",
            task.node,
            task.roles.join(" or "),
            user.user,
            user.roles.join(", ")
        )));
    }
    in_jurisdiction(task, user)
}

/// The user's unit covers the task's unit.
fn in_jurisdiction(task: &OpenTask, user: &Actor) -> Result<(), StepError> {
    if !unit_contains(&user.unit, &task.unit) {
        return Err(StepError::Forbidden(format!(
            "task {} belongs to {}; {} acts for {}",
            task.node, task.unit, user.user, user.unit
        )));
    }
    Ok(())
}

/// True for the roles that may unclaim and reassign other users' tasks in their units.
pub fn is_supervisor_role(role: &str) -> bool {
    role == "admin" || role.ends_with("_head")
}

impl Run<'_> {
    pub(in crate::core) fn claim(
        &mut self,
        task: &TaskRef,
        actor: &Actor,
    ) -> Result<String, StepError> {
        let idx = self.find_task(task, actor)?;
        self.authorize_task(idx, actor)?;
        let task = &self.st.tasks[idx];
        if task.claimed_by.as_deref() != Some(actor.user.as_str()) {
            self.set_holder(idx, Some(actor.user.clone()), false);
        }
        Ok(self.st.tasks[idx].node.clone())
    }

    pub(in crate::core) fn unclaim(
        &mut self,
        task: &TaskRef,
        actor: &Actor,
    ) -> Result<String, StepError> {
        let idx = self.find_task(task, actor)?;
        let open = &self.st.tasks[idx];
        let Some(holder) = open.claimed_by.clone() else {
            return Err(StepError::Conflict(format!(
                "task {} is not claimed",
                open.node
            )));
        };
        if holder != actor.user {
            self.authorize_supervisor(idx, actor)?;
        }
        self.set_holder(idx, None, false);
        Ok(self.st.tasks[idx].node.clone())
    }

    pub(in crate::core) fn reassign(
        &mut self,
        task: &TaskRef,
        actor: &Actor,
        to: &Actor,
    ) -> Result<String, StepError> {
        let idx = self.find_task(task, actor)?;
        self.authorize_supervisor(idx, actor)?;
        self.authorize_target(idx, to)?;
        self.set_holder(idx, Some(to.user.clone()), true);
        Ok(self.st.tasks[idx].node.clone())
    }

    pub(in crate::core) fn delegate(
        &mut self,
        task: &TaskRef,
        actor: &Actor,
        to: &Actor,
    ) -> Result<String, StepError> {
        let idx = self.find_task(task, actor)?;
        let open = &self.st.tasks[idx];
        match &open.claimed_by {
            Some(holder) if holder == &actor.user => {}
            Some(holder) => {
                return Err(StepError::Conflict(format!(
                    "task {} is claimed by {holder}",
                    open.node
                )));
            }
            // Unclaimed: whoever could claim it may hand it on instead.
            None => self.authorize_task(idx, actor)?,
        }
        self.authorize_target(idx, to)?;
        self.set_holder(idx, Some(to.user.clone()), true);
        Ok(self.st.tasks[idx].node.clone())
    }

    /// The actor supervises the task's unit.
    pub(in crate::core) fn authorize_supervisor(
        &self,
        idx: usize,
        actor: &Actor,
    ) -> Result<(), StepError> {
        let task = &self.st.tasks[idx];
        if !actor.roles.iter().any(|r| is_supervisor_role(r)) {
            return Err(StepError::Forbidden(format!(
                "only the holder or a head of the unit may hand on task {}; {} has {}",
                task.node,
                actor.user,
                actor.roles.join(", ")
            )));
        }
        in_jurisdiction(task, actor)
    }

    /// The user a task is handed to could complete it.
    pub(in crate::core) fn authorize_target(
        &self,
        idx: usize,
        to: &Actor,
    ) -> Result<(), StepError> {
        let task = &self.st.tasks[idx];
        may_work_on(task, to)?;
        self.check_separation(idx, to)
    }

    /// Records the task's new claimant (and assignee, when `move_assignee` and the task
    /// has one) and tells the store what the task row now shows.
    pub(in crate::core) fn set_holder(
        &mut self,
        idx: usize,
        claimant: Option<String>,
        move_assignee: bool,
    ) {
        let task = &mut self.st.tasks[idx];
        if move_assignee && task.assignee.is_some() {
            task.assignee.clone_from(&claimant);
        }
        task.claimed_by = claimant;
        let holder = task.claimed_by.clone().or_else(|| task.assignee.clone());
        let task_id = task.id.clone();
        self.effects.push(Effect::AssignTask { task_id, holder });
    }
}
