//! What a definition is checked against besides itself: the roles, calendars
//! and assessment programs of the deployment. A module of its own so the
//! compiler can use it without depending on the loader that calls the compiler.

use std::collections::BTreeSet;

/// The assessment programs of the rules crate.
pub const PROGRAMS: &[&str] = &["dibao", "low_income", "tekun", "temporary_aid"];

/// What a definition is checked against besides itself.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// Role ids from the org file; `None` leaves roles unchecked.
    pub roles: Option<BTreeSet<String>>,
    /// Calendar ids; `None` leaves calendars unchecked.
    pub calendars: Option<BTreeSet<String>>,
    /// Assessment programs a rule node may call.
    pub programs: BTreeSet<String>,
}

impl Default for LoadContext {
    fn default() -> LoadContext {
        LoadContext {
            roles: None,
            calendars: None,
            programs: PROGRAMS.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl LoadContext {
    pub fn with_roles(mut self, roles: impl IntoIterator<Item = impl Into<String>>) -> LoadContext {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    pub fn with_calendars(
        mut self,
        calendars: impl IntoIterator<Item = impl Into<String>>,
    ) -> LoadContext {
        self.calendars = Some(calendars.into_iter().map(Into::into).collect());
        self
    }
}
