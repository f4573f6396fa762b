//! Batch nodes (`type: batch`): a query of active benefits (`over`), a run key, the
//! effects made per recipient (`each`, with `recipient` in scope) and the completion run
//! when the run reports back (`set`/`outcome`/`next`, with `batch` in scope).
//! The language of batches: `docs/batches.md`.

use super::*;

/// The keys of `over`, and whether each must be given.
const OVER_KEYS: &[(&str, bool)] = &[
    ("benefits", true),
    ("unit", false),
    ("as_of", false),
    ("per", false),
];

/// How recipients are counted: one per household (case) or one per benefit.
const PER_VALUES: &[&str] = &["household", "benefit"];

/// The effects a batch may make per recipient.
const EACH_KINDS: &[EffectKind] = &[EffectKind::Payment];

/// `recipient` inside `each`: one active benefit (or household) of the query.
pub fn recipient_type() -> Type {
    Type::Object {
        fields: [
            ("case", Type::String),
            ("unit", Type::String),
            ("program", Type::String),
            ("payee", Type::String),
            ("account", Type::String),
            ("id_number", Type::String),
            ("household_size", Type::Int),
            ("covered", Type::Int),
            ("area", Type::String),
            ("amount", Type::Decimal),
        ]
        .into_iter()
        .map(|(name, ty)| (name.to_string(), ty))
        .collect(),
        open: false,
    }
}

/// The fields of the run's report (message `batch_done`), which is `batch` in scope.
fn report_fields() -> Vec<FieldDecl> {
    let field = |name: &str, ty: Type, required: bool| FieldDecl {
        name: name.to_string(),
        ty,
        label: None,
        required,
        required_when: None,
        default: None,
        min: None,
        max: None,
        min_items: None,
    };
    vec![
        field("run_key", Type::String, true),
        field("count", Type::Int, true),
        field("total", Type::Decimal, true),
        // A second run under a key already run pays nobody: `duplicate` is true and
        // `first_case` names the case whose run the key belongs to.
        field("duplicate", Type::Bool, false),
        field("first_case", Type::String, false),
    ]
}

/// `batch` after the run: the report's fields.
pub fn report_type() -> Type {
    Type::Object {
        fields: report_fields()
            .into_iter()
            .map(|f| (f.name, f.ty))
            .collect(),
        open: false,
    }
}

impl Compiler<'_, '_> {
    pub(super) fn batch(
        &mut self,
        f: &mut Fields<'_>,
        base: &BTreeMap<String, Type>,
    ) -> (NodeKind, Completion) {
        let scope = Scope::new(base);
        let over = f
            .required(self.ctx, "over")
            .map(|y| self.batch_over(y, &scope))
            .unwrap_or_default();
        let run_key = f
            .required(self.ctx, "run_key")
            .and_then(|y| self.string_or_expr(y, &scope, "run_key"));
        let once_per = f
            .get("once_per")
            .and_then(|y| self.string_or_expr(y, &scope, "once_per"));
        let each_scope = Scope::new(base).with("recipient", recipient_type());
        let each = match f.required(self.ctx, "each") {
            Some(y) => {
                let each = self.effects(y, &each_scope);
                for (template, item) in each.iter().zip(self.ctx.seq(y, "each")) {
                    if !EACH_KINDS.contains(&template.kind) {
                        self.ctx.error_hint(
                            &item.at,
                            codes::E_BAD_VALUE,
                            format!(
                                "a batch makes a payment per recipient, not {}",
                                template.kind.as_str()
                            ),
                            "write notices after the batch, in its `emit`",
                        );
                    }
                }
                if each.is_empty() && !self.ctx.seq(y, "each").is_empty() {
                    // Its items' problems are reported already.
                } else if each.is_empty() {
                    self.ctx.error(
                        &y.at,
                        codes::E_MISSING_KEY,
                        "a batch does at least one thing per recipient",
                    );
                }
                each
            }
            None => Vec::new(),
        };
        let done_scope = Scope::new(base).with("batch", report_type());
        let completion = self.completion(f, &done_scope, true);
        let done = MessageHandler {
            name: BATCH_DONE.to_string(),
            roles: vec![BATCH_SENDER_ROLE.to_string()],
            form: report_fields(),
            completion,
        };
        let kind = match run_key {
            Some(run_key) => NodeKind::Batch(BatchDecl {
                over,
                run_key,
                once_per,
                each,
                done,
            }),
            None => NodeKind::Compute,
        };
        (kind, Completion::default())
    }

    fn batch_over(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Vec<(String, ValueTemplate)> {
        let mut out = Vec::new();
        let entries = self.ctx.entries(y, "over");
        for (key, value) in entries {
            if !OVER_KEYS.iter().any(|(name, _)| *name == key.name) {
                let hint = hint_list(&key.name, OVER_KEYS.iter().map(|(n, _)| *n));
                self.ctx.error_hint(
                    &key.at,
                    codes::E_UNKNOWN_KEY,
                    format!("unknown key `{}` of `over`", key.name),
                    hint,
                );
                continue;
            }
            if key.name == "per"
                && let YamlValue::Str(per) = &value.value
                && !PER_VALUES.contains(&per.as_str())
            {
                self.ctx.error(
                    &value.at,
                    codes::E_BAD_VALUE,
                    format!("`per: {per}` must be `household` or `benefit`"),
                );
                continue;
            }
            if let Some(t) = self.template(value, scope, None) {
                out.push((key.name.clone(), t));
            }
        }
        for (name, required) in OVER_KEYS {
            if *required && !entries.iter().any(|(k, _)| k.name == *name) {
                self.ctx.error(
                    &y.at,
                    codes::E_MISSING_KEY,
                    format!("`over` needs `{name}` (the programs whose active benefits count)"),
                );
            }
        }
        out
    }

    /// A string expression (`="heating:" + season`) or a literal string: `run_key`,
    /// `once_per`, the parts of `requires_active`.
    pub(super) fn string_or_expr(
        &mut self,
        y: &Yaml,
        scope: &dyn TypeEnv,
        what: &str,
    ) -> Option<Expr> {
        let YamlValue::Str(text) = &y.value else {
            self.ctx.wrong_type(y, "a string expression", what);
            return None;
        };
        let expr = if text.starts_with('=') {
            self.expr_at(y, text, 1, scope, Expect::Any)?
        } else if text.contains(['\'', '\\']) {
            self.ctx.error_hint(
                &y.at,
                codes::E_BAD_VALUE,
                format!("a literal `{what}` may not contain quotes or backslashes"),
                "write it as an expression: `=\"...\"`",
            );
            return None;
        } else {
            self.expr_at(y, &format!("'{text}'"), 0, scope, Expect::Any)?
        };
        if !matches!(expr.result_type(), Type::String | Type::Enum(_) | Type::Any) {
            self.ctx.error(
                &y.at,
                codes::E_TYPE,
                format!("`{what}` must be a string, not {}", expr.result_type()),
            );
            return None;
        }
        Some(expr)
    }
}
