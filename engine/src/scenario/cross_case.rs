//! Effects between the cases of one scenario, carried out in memory as the engine carries
//! them out after commit (`runtime/internal.rs`): `start_process` starts the child (linked
//! to its parent for `on_end`, with `reply` told at once), `message` steps its target as
//! the system user, and a business key is unique among the scenario's active cases.
//!
//! A child is named `PROCESS@PARENT_ID` (`dibao_review@tekun-1`), and may also be named
//! through the parent's scenario name (`dibao_review@main`); a second child of the same
//! process and parent gets `#2`, `#3` … (`dibao_review@tekun-1#2`).

use super::*;
use crate::core::{ParentLink, Status};
use crate::lang::model::SYSTEM_ROLE;

impl Runner<'_> {
    /// Refuses a new case whose business key a case of its process holds: an active one,
    /// or one ended with an outcome of the definition's `key_outlives`.
    pub(super) fn check_key(
        &self,
        def: &Definition,
        started: &InstanceState,
    ) -> Result<(), StartFailure> {
        let Some(key) = &started.key else {
            return Ok(());
        };
        if !holds_key(def, started) {
            return Ok(());
        }
        match self.key_holder(&started.process, key) {
            Some(holder) => Err(StartFailure::Refused {
                code: "duplicate",
                text: format!(
                    "duplicate: a {} case holding the same business key exists: {holder}",
                    started.process
                ),
            }),
            None => Ok(()),
        }
    }

    fn key_holder(&self, process: &str, key: &str) -> Option<String> {
        self.instances
            .iter()
            .find(|(_, i)| {
                i.state.process == process
                    && i.state.key.as_deref() == Some(key)
                    && holds_key(&i.def, &i.state)
            })
            .map(|(_, i)| i.state.id.clone())
    }

    /// `requires_active`: the scenario holds an approved case (active, or ended approved)
    /// of the process whose variables hold the ID number, as the engine's store search
    /// finds it (`runtime/keys.rs`); else `no_active_benefit`.
    pub(super) fn check_requires(&self, started: &InstanceState) -> Result<(), StartFailure> {
        let Some(need) = &started.requires else {
            return Ok(());
        };
        let found = self.instances.iter().any(|(_, i)| {
            let s = &i.state;
            s.process == need.process
                && s.outcome.as_deref() == Some("approved")
                && s.status != Status::Terminated
                && crate::store::search::id_numbers(&Value::Object(s.vars.clone()).to_json())
                    .iter()
                    .any(|n| crate::privacy::same_id_number(n, &need.id_number))
        });
        if found {
            return Ok(());
        }
        Err(StartFailure::Refused {
            code: "no_active_benefit",
            text: format!(
                "no_active_benefit: no approved {} case holds ID number {}",
                need.process,
                crate::privacy::mask_id_number(&need.id_number)
            ),
        })
    }

    /// `PROCESS@NAME` where NAME is a case's scenario name: the child of that case.
    pub(super) fn child_by_parent_name(&self, name: &str) -> Option<usize> {
        let (process, rest) = name.split_once('@')?;
        let (parent_name, nth) = match rest.split_once('#') {
            Some((parent, nth)) => (parent, format!("#{nth}")),
            None => (rest, String::new()),
        };
        let parent = self.instances.iter().find(|(n, _)| n == parent_name)?;
        let wanted = format!("{process}@{}{nth}", parent.1.state.id);
        self.instances.iter().position(|(n, _)| *n == wanted)
    }

    /// Starts a child a `start_process` asked for, then tells the parent when asked to.
    pub(super) fn start_child(
        &mut self,
        pending: PendingStart,
        actor: Actor,
    ) -> Result<(), String> {
        let base = format!("{}@{}", pending.process, pending.parent);
        let mut name = base.clone();
        let mut nth = 1;
        while self.instances.iter().any(|(n, _)| *n == name) {
            nth += 1;
            name = format!("{base}#{nth}");
        }
        let link = ParentLink {
            case: pending.parent.clone(),
            on_end: pending.on_end.clone(),
        };
        let started = self.start_linked(&pending.process, actor, pending.data, &name, Some(link));
        // As the engine tells it (`runtime/internal.rs`): started, a duplicate (naming
        // the active case) or refused (with the code), when the parent asked.
        let (status, case, code) = match started {
            Ok(case) => ("started", Value::Str(case), Value::Null),
            Err(StartFailure::Refused { code, text }) if pending.reply.is_some() => {
                if code == "duplicate" {
                    let holder = text.rsplit(": ").next().unwrap_or_default().to_string();
                    ("duplicate", Value::Str(holder), Value::Str(code.into()))
                } else {
                    ("refused", Value::Null, Value::Str(code.into()))
                }
            }
            Err(error) => {
                return Err(format!(
                    "starting {} for {}: {}",
                    pending.process,
                    pending.parent,
                    String::from(error)
                ));
            }
        };
        let Some(reply) = pending.reply else {
            return Ok(());
        };
        let data = BTreeMap::from([
            ("case".to_string(), case),
            ("process".to_string(), Value::Str(pending.process.clone())),
            ("status".to_string(), Value::Str(status.to_string())),
            ("code".to_string(), code),
            ("outcome".to_string(), Value::Null),
        ]);
        self.deliver_message(&pending.parent, &reply, data)
    }

    /// A `message` effect of case `sender`: delivered to its target now.
    pub(super) fn message_effect(
        &mut self,
        sender: &str,
        effect: &serde_json::Value,
    ) -> Result<(), String> {
        let name = text(effect, "name")
            .ok_or_else(|| format!("{sender}: a message effect without `name`"))?;
        let target = match (
            text(effect, "case"),
            text(effect, "process"),
            text(effect, "key"),
        ) {
            (Some(case), None, None) => case,
            (None, Some(process), Some(key)) => {
                self.key_holder(&process, &key).ok_or_else(|| {
                    format!(
                        "{sender}: message {name}: no active {process} case has that business key"
                    )
                })?
            }
            _ => {
                return Err(format!(
                    "{sender}: message {name} needs `case`, or `process` and `key`"
                ));
            }
        };
        let data = match effect.get("data").map(Value::from_json) {
            Some(Value::Object(map)) => map,
            _ => BTreeMap::new(),
        };
        self.deliver_message(&target, &name, data)
            .map_err(|e| format!("{sender}: {e}"))
    }

    /// Steps case `target` with message `name` as the system user.
    pub(super) fn deliver_message(
        &mut self,
        target: &str,
        name: &str,
        data: BTreeMap<String, Value>,
    ) -> Result<(), String> {
        let idx = self
            .instances
            .iter()
            .position(|(_, i)| i.state.id == target)
            .ok_or_else(|| format!("message {name}: case {target} does not exist"))?;
        let now = self.now;
        let instance = &mut self.instances[idx].1;
        if instance.state.status != Status::Active {
            return Err(format!(
                "message {name}: case {target} has ended ({})",
                instance.state.status.as_str()
            ));
        }
        let actor = Actor {
            user: "system".into(),
            roles: vec![SYSTEM_ROLE.into()],
            unit: instance.state.unit.clone(),
        };
        let event = Event::Message {
            name: name.to_string(),
            actor: Some(actor),
            data,
        };
        let ctx = Context {
            calendar: &instance.calendar,
            assessor: self.assessor.as_ref(),
        };
        let transition = core::step(&instance.def, &instance.state, &event, now, &ctx)
            .map_err(|e| format!("message {name} to {target}: {}", describe_error(&e)))?;
        instance.state = transition.state;
        let outward = record(instance, &transition.effects);
        self.follow(outward)
    }
}

/// A case holds its business key while active, and after it ended with an outcome of its
/// definition's `key_outlives` (as `runtime/commit.rs` keeps the key's row).
fn holds_key(def: &Definition, state: &InstanceState) -> bool {
    state.status == Status::Active
        || state
            .outcome
            .as_ref()
            .is_some_and(|o| def.key_outlives.contains(o))
}
