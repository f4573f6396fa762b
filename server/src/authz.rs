//! Authorization in one place: who the caller is (a [`Principal`]) and what they may see.
//! A case is visible when the caller's unit contains the case's unit; a case outside it is
//! reported as not found, so ids do not reveal which cases exist. What a caller may do on
//! a visible case's tasks is the engine core's decision (role, unit, separation of duties).

use jiuzhu_engine::core::{Actor, unit_contains};

use crate::problem::ApiError;
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

/// The role of system administrators (procedures, users, tokens, payments).
pub const ADMIN_ROLE: &str = "admin";

impl Principal {
    /// Whether the caller administers the system.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == ADMIN_ROLE)
    }

    /// `Ok` for an administrator; otherwise the `forbidden` refusal. Every
    /// administration page and action passes through here.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("forbidden", "administrators only"))
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
}
