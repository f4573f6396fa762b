//! Deadlines and timers: arming, rescheduling and cancelling, and the calendar arithmetic of due times.

use crate::core::*;

impl Run<'_> {
    pub(in crate::core) fn arm_deadline(&mut self, i: usize) -> Result<(), StepError> {
        let decl = &self.def.deadlines[i];
        let (due_at, provisional) = self.add_marked(&decl.due, self.now, &decl.id)?;
        self.st.deadlines.push(DeadlineState {
            id: decl.id.clone(),
            armed_at: self.now,
            due_at,
            active: true,
            overdue: false,
            provisional,
        });
        self.schedule_deadline_timers(i, due_at, provisional)
    }

    pub(in crate::core) fn schedule_deadline_timers(
        &mut self,
        i: usize,
        due_at: DateTime<FixedOffset>,
        provisional: bool,
    ) -> Result<(), StepError> {
        let decl = &self.def.deadlines[i];
        let id = decl.id.clone();
        if let Some(lead) = &decl.remind_before {
            let (at, lead_provisional) = self.subtract_marked(lead, due_at, &id)?;
            if at > self.now {
                self.schedule_marked(
                    at,
                    TimerKind::DeadlineReminder {
                        deadline: id.clone(),
                    },
                    provisional || lead_provisional,
                );
            }
        }
        self.schedule_marked(due_at, TimerKind::DeadlineDue { deadline: id }, provisional);
        Ok(())
    }

    /// A task's reminder (when still ahead) and due timers, for its due date `due`.
    pub(in crate::core) fn schedule_task_timers(
        &mut self,
        task: &str,
        deadline: &TaskDeadline,
        due: DateTime<FixedOffset>,
        provisional: bool,
        node_id: &str,
    ) -> Result<(), StepError> {
        if let Some(lead) = &deadline.remind_before {
            let (at, lead_provisional) = self.subtract_marked(lead, due, node_id)?;
            if at > self.now {
                self.schedule_marked(
                    at,
                    TimerKind::TaskReminder {
                        task: task.to_string(),
                    },
                    provisional || lead_provisional,
                );
            }
        }
        self.schedule_marked(
            due,
            TimerKind::TaskDue {
                task: task.to_string(),
            },
            provisional,
        );
        Ok(())
    }

    /// `CalendarChanged`: counts every provisional due date again (open tasks from when
    /// they opened, armed deadlines from when they were armed, `timer` nodes and `receive`
    /// timeouts from when their token arrived) with the calendar now in
    /// force, and moves their timers. Refused when no due date or mark changes, so a
    /// deploy that brings nothing new writes no history.
    pub(in crate::core) fn recount_provisional(&mut self) -> Result<(), StepError> {
        let mut changed = false;
        let tasks: Vec<usize> = (0..self.st.tasks.len())
            .filter(|&i| self.st.tasks[i].provisional)
            .collect();
        for i in tasks {
            let task = self.st.tasks[i].clone();
            let Some(node_idx) = self.def.node_index(&task.node) else {
                continue;
            };
            let NodeKind::Task(decl) = &self.def.nodes[node_idx].kind else {
                continue;
            };
            let Some(deadline) = &decl.deadline else {
                continue;
            };
            let (due, provisional) = self.add_marked(&deadline.due, task.opened_at, &task.node)?;
            if Some(due) == task.due_at && provisional == task.provisional {
                continue;
            }
            changed = true;
            self.st.tasks[i].due_at = Some(due);
            self.st.tasks[i].provisional = provisional;
            let timers: Vec<String> = self
                .st
                .timers
                .iter()
                .filter(|t| match &t.kind {
                    TimerKind::TaskReminder { task: id } | TimerKind::TaskDue { task: id } => {
                        *id == task.id
                    }
                    _ => false,
                })
                .map(|t| t.id.clone())
                .collect();
            for timer in timers {
                self.cancel_timer(&timer);
            }
            self.effects.push(Effect::RescheduleTask {
                task_id: task.id.clone(),
                due_at: Some(due),
                provisional,
            });
            self.schedule_task_timers(&task.id, deadline, due, provisional, &task.node)?;
        }
        let deadlines: Vec<usize> = (0..self.st.deadlines.len())
            .filter(|&i| {
                let d = &self.st.deadlines[i];
                d.provisional && d.active && !d.overdue
            })
            .collect();
        for pos in deadlines {
            let state = self.st.deadlines[pos].clone();
            let Some(i) = self.def.deadlines.iter().position(|d| d.id == state.id) else {
                continue;
            };
            let due = self.def.deadlines[i].due;
            let (due_at, provisional) = self.add_marked(&due, state.armed_at, &state.id)?;
            if due_at == state.due_at && provisional == state.provisional {
                continue;
            }
            changed = true;
            self.st.deadlines[pos].due_at = due_at;
            self.st.deadlines[pos].provisional = provisional;
            self.cancel_deadline_timers(&state.id);
            self.schedule_deadline_timers(i, due_at, provisional)?;
        }
        changed |= self.recount_node_timers()?;
        if changed {
            self.refresh_builtins();
            Ok(())
        } else {
            Err(StepError::NotFound(format!(
                "instance {}: no provisional due date changes with this calendar",
                self.st.id
            )))
        }
    }

    /// The provisional timers of `timer` nodes and `receive` timeouts counted again from
    /// where they started; whether any moved or lost its mark.
    fn recount_node_timers(&mut self) -> Result<bool, StepError> {
        let def = self.def;
        let mut changed = false;
        let timers: Vec<Timer> = self
            .st
            .timers
            .iter()
            .filter(|t| t.provisional && matches!(t.kind, TimerKind::Node { .. }))
            .cloned()
            .collect();
        for timer in timers {
            let (TimerKind::Node { token }, Some(from)) = (&timer.kind, timer.counted_from) else {
                continue;
            };
            let token = *token;
            let Some(node) = self.st.tokens.iter().find(|t| t.id == token) else {
                continue;
            };
            let Some(node_idx) = def.node_index(&node.node) else {
                continue;
            };
            let node = &def.nodes[node_idx];
            let spec = match &node.kind {
                NodeKind::Timer(spec) => spec,
                NodeKind::Receive(recv) => match &recv.timeout {
                    Some((spec, _)) => spec,
                    None => continue,
                },
                _ => continue,
            };
            let TimerSpec::After(duration) = spec else {
                continue;
            };
            let (due, provisional) = self.add_marked(duration, from, &node.id)?;
            if due == timer.due_at && provisional == timer.provisional {
                continue;
            }
            changed = true;
            self.cancel_timer(&timer.id);
            self.schedule_node_timer(due, token, provisional.then_some(from));
        }
        Ok(changed)
    }

    pub(in crate::core) fn disarm_deadline(&mut self, id: &str) {
        if let Some(d) = self.st.deadlines.iter_mut().find(|d| d.id == id) {
            d.active = false;
        }
        self.cancel_deadline_timers(id);
    }

    pub(in crate::core) fn cancel_deadline_timers(&mut self, id: &str) {
        let timers: Vec<String> =
            self.st
                .timers
                .iter()
                .filter(|t| match &t.kind {
                    TimerKind::DeadlineReminder { deadline }
                    | TimerKind::DeadlineDue { deadline } => deadline == id,
                    _ => false,
                })
                .map(|t| t.id.clone())
                .collect();
        for timer in timers {
            self.cancel_timer(&timer);
        }
    }

    pub(in crate::core) fn reschedule_deadline(
        &mut self,
        i: usize,
        duration: &Duration,
    ) -> Result<(), StepError> {
        let id = self.def.deadlines[i].id.clone();
        let Some(pos) = self
            .st
            .deadlines
            .iter()
            .position(|d| d.id == id && d.active)
        else {
            return Ok(());
        };
        let armed_at = self.st.deadlines[pos].armed_at;
        let (due_at, provisional) = self.add_marked(duration, armed_at, &id)?;
        self.st.deadlines[pos].due_at = due_at;
        self.st.deadlines[pos].overdue = false;
        self.st.deadlines[pos].provisional = provisional;
        self.cancel_deadline_timers(&id);
        self.schedule_deadline_timers(i, due_at, provisional)
    }

    /// The timer of the token `token` waiting at a `timer` node or for a `receive`
    /// timeout, due at `due`; provisional when `counted_from` is set (see
    /// [`Run::node_timer_due`]).
    pub(in crate::core) fn schedule_node_timer(
        &mut self,
        due: DateTime<FixedOffset>,
        token: u64,
        counted_from: Option<DateTime<FixedOffset>>,
    ) {
        self.schedule_timer(
            due,
            TimerKind::Node { token },
            counted_from.is_some(),
            counted_from,
        );
    }

    /// A timer whose due time may be provisional (see [`Run::add_marked`]).
    pub(in crate::core) fn schedule_marked(
        &mut self,
        due_at: DateTime<FixedOffset>,
        kind: TimerKind,
        provisional: bool,
    ) {
        self.schedule_timer(due_at, kind, provisional, None);
    }

    fn schedule_timer(
        &mut self,
        due_at: DateTime<FixedOffset>,
        kind: TimerKind,
        provisional: bool,
        counted_from: Option<DateTime<FixedOffset>>,
    ) {
        let id = self.st.next_id('w');
        let timer = Timer {
            id,
            due_at,
            kind,
            provisional,
            counted_from,
        };
        self.st.timers.push(timer.clone());
        self.effects.push(Effect::ScheduleTimer(timer));
    }

    pub(in crate::core) fn cancel_timer(&mut self, id: &str) {
        self.st.timers.retain(|t| t.id != id);
        self.effects.push(Effect::CancelTimer {
            timer_id: id.to_string(),
        });
    }

    pub(in crate::core) fn cancel_node_timers(&mut self, token: u64) {
        let timers: Vec<String> = self
            .st
            .timers
            .iter()
            .filter(|t| t.kind == TimerKind::Node { token })
            .map(|t| t.id.clone())
            .collect();
        for id in timers {
            self.cancel_timer(&id);
        }
    }

    /// When a `timer` node's (or `receive` timeout's) timer is due, and, when that was
    /// counted in working days through a year the calendar does not cover (provisional),
    /// the instant the count started from.
    pub(in crate::core) fn node_timer_due(
        &self,
        spec: &TimerSpec,
        node_id: &str,
    ) -> Result<(DateTime<FixedOffset>, Option<DateTime<FixedOffset>>), StepError> {
        match spec {
            TimerSpec::After(duration) => {
                let (due, provisional) = self.add_marked(duration, self.now, node_id)?;
                Ok((due, provisional.then_some(self.now)))
            }
            TimerSpec::Until(_) => Ok((self.timer_due(spec, node_id)?, None)),
        }
    }

    pub(in crate::core) fn timer_due(
        &self,
        spec: &TimerSpec,
        node_id: &str,
    ) -> Result<DateTime<FixedOffset>, StepError> {
        match spec {
            TimerSpec::After(duration) => self.add(duration, self.now, node_id),
            TimerSpec::Until(expr) => match self.eval(expr, &[], node_id)? {
                Value::DateTime(t) => Ok(t),
                Value::Date(d) => {
                    let local = d.and_time(NaiveTime::MIN);
                    self.now
                        .offset()
                        .from_local_datetime(&local)
                        .single()
                        .ok_or_else(|| {
                            incident(node_id, "timer date does not exist in the local time zone")
                        })
                }
                other => Err(incident(
                    node_id,
                    &format!("`until` gave {}, not a date", other.type_name()),
                )),
            },
        }
    }

    pub(in crate::core) fn add(
        &self,
        d: &Duration,
        t: DateTime<FixedOffset>,
        node_id: &str,
    ) -> Result<DateTime<FixedOffset>, StepError> {
        d.add_to(t, self.ctx.calendar)
            .map_err(|e| incident(node_id, &e.to_string()))
    }

    /// `d` after `t`, and whether the result is provisional: a count of working days
    /// that touched a year the calendar does not cover (other units need no calendar).
    pub(in crate::core) fn add_marked(
        &self,
        d: &Duration,
        t: DateTime<FixedOffset>,
        node_id: &str,
    ) -> Result<(DateTime<FixedOffset>, bool), StepError> {
        let due = self.add(d, t, node_id)?;
        Ok((due, self.is_provisional(d, t, due)))
    }

    /// [`Run::subtract`] with the provisional mark of [`Run::add_marked`].
    pub(in crate::core) fn subtract_marked(
        &self,
        d: &Duration,
        t: DateTime<FixedOffset>,
        node_id: &str,
    ) -> Result<(DateTime<FixedOffset>, bool), StepError> {
        let at = self.subtract(d, t, node_id)?;
        Ok((at, self.is_provisional(d, t, at)))
    }

    fn is_provisional(
        &self,
        d: &Duration,
        from: DateTime<FixedOffset>,
        to: DateTime<FixedOffset>,
    ) -> bool {
        let calendar = self.ctx.calendar;
        d.unit() == crate::duration::DurationUnit::WorkingDays
            && calendar.is_provisional_between(calendar.local_date(from), calendar.local_date(to))
    }

    /// The instant `d` before `t` (reminder lead times): working days count back by the calendar.
    pub(in crate::core) fn subtract(
        &self,
        d: &Duration,
        t: DateTime<FixedOffset>,
        node_id: &str,
    ) -> Result<DateTime<FixedOffset>, StepError> {
        use crate::duration::DurationUnit;
        let amount = d.amount();
        let back = match d.unit() {
            DurationUnit::WorkingDays => {
                return self
                    .ctx
                    .calendar
                    .subtract_working_days(t, amount)
                    .map_err(|e| incident(node_id, &e.to_string()));
            }
            DurationUnit::Days => t.checked_sub_days(chrono::Days::new(u64::from(amount))),
            DurationUnit::Hours => {
                t.checked_sub_signed(chrono::TimeDelta::hours(i64::from(amount)))
            }
            DurationUnit::Minutes => {
                t.checked_sub_signed(chrono::TimeDelta::minutes(i64::from(amount)))
            }
            DurationUnit::Months => t.checked_sub_months(chrono::Months::new(amount)),
            DurationUnit::Years => amount
                .checked_mul(12)
                .and_then(|m| t.checked_sub_months(chrono::Months::new(m))),
        };
        back.ok_or_else(|| incident(node_id, &format!("{d} before {t} is out of range")))
    }
}
