//! The start data's checks (`checks:` in the header): conditions over the variables as
//! they stand at start, each with the JSON path and the message of a refusal. They add
//! to what the declared types check at the door: relations between fields (a member id
//! that must name one of the household's members) and bounds inside objects (no
//! negative amount in a map of fees).

use super::*;

impl Compiler<'_, '_> {
    pub(super) fn start_checks(&mut self, y: &Yaml) -> Vec<StartCheck> {
        let items: &[Yaml] = self.ctx.seq(y, "checks");
        let base = self.base.clone();
        let scope = Scope::new(&base);
        let mut out = Vec::new();
        for item in items {
            let Some(mut f) = self.ctx.fields(item, "a start check") else {
                continue;
            };
            let condition = f
                .required(self.ctx, "if")
                .and_then(|c| self.expr(c, &scope, Expect::Bool, "if"));
            let message = f
                .required(self.ctx, "message")
                .and_then(|m| self.ctx.str(m, "message"))
                .map(str::to_string);
            let path = match f.get("path") {
                Some(p) => match self.ctx.str(p, "path") {
                    Some(text) if text == "$" || text.starts_with("$.") => Some(text.to_string()),
                    Some(text) => {
                        self.ctx.error_hint(
                            &p.at,
                            codes::E_BAD_VALUE,
                            format!("check path `{text}` is not a JSON path"),
                            "write it from the start data's root, e.g. `$.fees`",
                        );
                        None
                    }
                    None => None,
                },
                None => Some("$".to_string()),
            };
            f.finish(self.ctx);
            if let (Some(condition), Some(message), Some(path)) = (condition, message, path) {
                out.push(StartCheck {
                    condition,
                    path,
                    message,
                });
            }
        }
        out
    }

    /// `requires_active: {process, id_number}`: each a literal string or an
    /// `=expression` over the start's variables.
    pub(super) fn requires_active(&mut self, y: &Yaml) -> Option<RequiresActive> {
        let mut f = self.ctx.fields(y, "requires_active")?;
        let base = self.base.clone();
        let scope = Scope::new(&base);
        let process = f
            .required(self.ctx, "process")
            .and_then(|p| self.string_or_expr(p, &scope, "process"));
        let id_number = f
            .required(self.ctx, "id_number")
            .and_then(|p| self.string_or_expr(p, &scope, "id_number"));
        f.finish(self.ctx);
        Some(RequiresActive {
            process: process?,
            id_number: id_number?,
        })
    }

    /// `key_outlives:` the outcomes whose ended cases keep their business key.
    pub(super) fn key_outlives(&mut self, y: &Yaml) -> Vec<String> {
        self.ctx
            .str_list(y, "key_outlives")
            .into_iter()
            .map(|(outcome, _)| outcome)
            .collect()
    }
}
