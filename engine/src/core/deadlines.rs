//! Deadlines and timers: arming, rescheduling and cancelling, and the calendar arithmetic of due times.

use crate::core::*;

impl Run<'_> {
    pub(in crate::core) fn arm_deadline(&mut self, i: usize) -> Result<(), StepError> {
        let decl = &self.def.deadlines[i];
        let due_at = self.add(&decl.due, self.now, &decl.id)?;
        self.st.deadlines.push(DeadlineState {
            id: decl.id.clone(),
            armed_at: self.now,
            due_at,
            active: true,
            overdue: false,
        });
        self.schedule_deadline_timers(i, due_at)
    }

    pub(in crate::core) fn schedule_deadline_timers(
        &mut self,
        i: usize,
        due_at: DateTime<FixedOffset>,
    ) -> Result<(), StepError> {
        let decl = &self.def.deadlines[i];
        let id = decl.id.clone();
        if let Some(lead) = &decl.remind_before {
            let at = self.subtract(lead, due_at, &id)?;
            if at > self.now {
                self.schedule(
                    at,
                    TimerKind::DeadlineReminder {
                        deadline: id.clone(),
                    },
                );
            }
        }
        self.schedule(due_at, TimerKind::DeadlineDue { deadline: id });
        Ok(())
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
        let due_at = self.add(duration, armed_at, &id)?;
        self.st.deadlines[pos].due_at = due_at;
        self.st.deadlines[pos].overdue = false;
        self.cancel_deadline_timers(&id);
        self.schedule_deadline_timers(i, due_at)
    }

    pub(in crate::core) fn schedule(&mut self, due_at: DateTime<FixedOffset>, kind: TimerKind) {
        let id = self.st.next_id('w');
        let timer = Timer { id, due_at, kind };
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
