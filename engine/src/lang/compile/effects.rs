//! Effects (`effects:` lists of tasks, notifications, payments…) and the
//! fields each kind requires.

use super::*;

impl Compiler<'_, '_> {
    pub(super) fn effects(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Vec<EffectTemplate> {
        let items = self.ctx.seq(y, "emit");
        items
            .iter()
            .filter_map(|item| self.effect(item, scope))
            .collect()
    }

    pub(super) fn effect(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Option<EffectTemplate> {
        const KINDS: &[(&str, EffectKind, &[&str])] = &[
            ("notification", EffectKind::Notification, &["template"]),
            ("payment", EffectKind::Payment, &["amount", "purpose"]),
            ("payment_stop", EffectKind::PaymentStop, &["purpose"]),
            ("start_process", EffectKind::StartProcess, &["process"]),
            ("escalation", EffectKind::Escalation, &["to_role"]),
            ("message", EffectKind::Message, &["name"]),
        ];
        let entries = self.ctx.entries(y, "an effect");
        let mut kind = None;
        let mut condition = None;
        let mut fields = Vec::new();
        for (key, value) in entries {
            if key.name == "if" {
                condition = self.expr(value, scope, Expect::Bool, "if");
                continue;
            }
            let Some((_, k, required)) = KINDS.iter().find(|(name, _, _)| *name == key.name) else {
                let hint = hint_list(&key.name, KINDS.iter().map(|(n, _, _)| *n).chain(["if"]));
                self.ctx.error_hint(
                    &key.at,
                    codes::E_UNKNOWN_KEY,
                    format!("unknown effect `{}`", key.name),
                    hint,
                );
                continue;
            };
            if kind.is_some() {
                self.ctx.error(
                    &key.at,
                    codes::E_UNKNOWN_KEY,
                    "an `emit` item has exactly one effect; write each effect as its own item",
                );
                continue;
            }
            kind = Some(*k);
            let body = self.ctx.entries(value, key.name.as_str());
            for field in *required {
                if !body.iter().any(|(k, _)| k.name == *field) {
                    self.ctx.error(
                        &value.at,
                        codes::E_MISSING_KEY,
                        format!("{} needs `{field}`", key.name),
                    );
                }
            }
            self.cross_case_checks(*k, value, body);
            for (field, field_value) in body {
                if let Some(t) = self.template(field_value, scope, None) {
                    self.effect_field_checks(*k, &field.name, field_value);
                    fields.push((field.name.clone(), t));
                }
            }
        }
        match kind {
            Some(kind) => Some(EffectTemplate {
                kind,
                fields,
                condition,
            }),
            None => {
                self.ctx.error(&y.at, codes::E_MISSING_KEY, "an `emit` item needs an effect: notification, payment, payment_stop, start_process, escalation or message");
                None
            }
        }
    }

    /// Literal roles and process ids in effects are checked like everywhere else.
    pub(super) fn effect_field_checks(&mut self, kind: EffectKind, field: &str, y: &Yaml) {
        let YamlValue::Str(s) = &y.value else { return };
        if s.starts_with('=') {
            return;
        }
        match (kind, field) {
            (_, "to_role") => self.role(s, &y.at),
            (EffectKind::StartProcess, "process") => self.process_refs.push(ProcessRef {
                process: s.clone(),
                line: y.at.line,
                column: y.at.column,
            }),
            (EffectKind::Payment, "schedule") if s != "once" && s != "monthly" => {
                self.ctx.error(
                    &y.at,
                    codes::E_BAD_VALUE,
                    format!("payment schedule `{s}` must be `once` or `monthly`"),
                );
            }
            _ => {}
        }
    }
}
