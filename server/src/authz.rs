//! Authorization in one place: who the caller is (a [`Principal`]) and what they may see.
//! A case is visible when the caller's unit contains the case's unit; a case outside it is
//! reported as not found, so ids do not reveal which cases exist. What a caller may do on
//! a visible case's tasks is the engine core's decision (role, unit, separation of duties).

use jiuzhu_engine::core::{Actor, unit_contains};

use crate::problem::ApiError;
use crate::sessions::TokenScope;
use crate::users::UserRecord;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session cookie; state-changing requests need the session's CSRF token.
    Session { id: String, csrf_token: String },
    /// `Authorization: Bearer` with an API token (machine clients; no CSRF check).
    Token,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub name: String,
    pub roles: Vec<String>,
    pub unit: String,
    pub credential: Credential,
}

impl Principal {
    pub fn new(user: UserRecord, credential: Credential) -> Principal {
        Principal {
            user: user.id,
            name: user.name,
            roles: user.roles,
            unit: user.unit,
            credential,
        }
    }

    /// Narrows the caller to a token's scope: its one role, its unit. False when the
    /// user no longer holds the role or the unit is no longer within the user's.
    pub fn narrow(&mut self, scope: &TokenScope) -> bool {
        if let Some(role) = &scope.role {
            if !self.roles.contains(role) {
                return false;
            }
            self.roles = vec![role.clone()];
        }
        if let Some(unit) = &scope.unit {
            if !unit_contains(&self.unit, unit) {
                return false;
            }
            self.unit = unit.clone();
        }
        true
    }

    /// The caller as the engine's actor.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.user.clone(),
            roles: self.roles.clone(),
            unit: self.unit.clone(),
        }
    }

    /// Whether the caller may see a case (or a task) of `unit`.
    pub fn can_see(&self, unit: &str) -> bool {
        unit_contains(&self.unit, unit)
    }

    /// `Ok` when the caller may see a case of `unit`; otherwise the same not-found answer
    /// as for a case that does not exist.
    pub fn require_visible(&self, unit: &str, what: &str, id: &str) -> Result<(), ApiError> {
        if self.can_see(unit) {
            Ok(())
        } else {
            Err(not_found(what, id))
        }
    }
}

/// The one not-found answer, for missing and invisible alike.
pub fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("no {what} {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(unit: &str) -> Principal {
        Principal {
            user: "u".into(),
            name: "n".into(),
            roles: vec![],
            unit: unit.into(),
            credential: Credential::Token,
        }
    }

    #[test]
    fn a_unit_sees_itself_and_below_only() {
        let county = principal("市/县");
        let township = principal("市/县/甲镇");
        assert!(county.can_see("市/县/甲镇"));
        assert!(county.can_see("市/县/乙镇/村"));
        assert!(township.can_see("市/县/甲镇/村"));
        assert!(!township.can_see("市/县/乙镇"));
        assert!(!township.can_see("市/县"));
        // A prefix that is not a path step is another unit.
        assert!(!township.can_see("市/县/甲镇西"));
        let err = township
            .require_visible("市/县/乙镇", "case", "x")
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 404);
    }

    #[test]
    fn a_token_scope_narrows_to_a_role_and_unit_the_user_holds() {
        let mut county = principal("市/县");
        county.roles = vec!["county_staff".into(), "county_head".into()];
        let scope = TokenScope {
            role: Some("county_staff".into()),
            unit: Some("市/县/甲镇".into()),
        };
        assert!(county.clone().narrow(&TokenScope::default()));
        let mut narrowed = county.clone();
        assert!(narrowed.narrow(&scope));
        assert_eq!(narrowed.roles, vec!["county_staff".to_string()]);
        assert!(narrowed.can_see("市/县/甲镇/村") && !narrowed.can_see("市/县/乙镇"));
        let lost_role = TokenScope {
            role: Some("township_head".into()),
            unit: None,
        };
        assert!(!county.clone().narrow(&lost_role));
        let outside = TokenScope {
            role: None,
            unit: Some("市/另县".into()),
        };
        assert!(!county.narrow(&outside));
    }
}
