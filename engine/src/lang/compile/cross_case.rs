//! The effects that reach other cases: `message` (to a case by id, or to the active case
//! of a process with a business key) and the `reply` / `on_end` messages of
//! `start_process`. All reading of their fields' shape is here, in one place.

use super::*;

impl Compiler<'_, '_> {
    /// Checks the shape of a `message` or `start_process` effect's body; other kinds pass.
    pub(super) fn cross_case_checks(&mut self, kind: EffectKind, y: &Yaml, body: &[(Key, Yaml)]) {
        let field = |name: &str| body.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        match kind {
            EffectKind::Message => {
                let by_case = field("case").is_some();
                let by_key = (field("process").is_some(), field("key").is_some());
                match (by_case, by_key) {
                    (true, (false, false)) | (false, (true, true)) => {}
                    (false, (false, false)) => self.ctx.error_hint(
                        &y.at,
                        codes::E_MISSING_KEY,
                        "a message effect needs its target: `case`, or `process` and `key`",
                        "`case: \"=case\"` names an instance id; `process` + `key` the active case with that business key",
                    ),
                    (true, _) => self.ctx.error(
                        &y.at,
                        codes::E_BAD_VALUE,
                        "a message effect names its target once: `case`, or `process` and `key`, not both",
                    ),
                    (false, _) => self.ctx.error(
                        &y.at,
                        codes::E_MISSING_KEY,
                        "a message effect to a process needs both `process` and `key`",
                    ),
                }
                if let Some(name) = field("name") {
                    self.literal_message_name(name, "the message name");
                }
            }
            EffectKind::StartProcess => {
                for name in ["reply", "on_end"] {
                    if let Some(value) = field(name) {
                        self.literal_message_name(value, name);
                    }
                }
            }
            EffectKind::Payment => {
                if let Some(value) = field("reserve_reply") {
                    self.literal_message_name(value, "reserve_reply");
                }
            }
            _ => {}
        }
    }

    /// A message name written literally must be an identifier (an `=expression` is
    /// checked when the message is delivered).
    fn literal_message_name(&mut self, y: &Yaml, what: &str) {
        if let YamlValue::Str(name) = &y.value
            && !name.starts_with('=')
            && !is_identifier(name)
        {
            self.ctx.error_hint(
                &y.at,
                codes::E_BAD_ID,
                format!("{what} `{name}` is not a valid message name"),
                "use lowercase letters, digits and `_`, starting with a letter",
            );
        }
    }
}
