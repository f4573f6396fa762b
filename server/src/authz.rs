//! Authorization in one place: who the caller is (a [`Principal`]) and what they may see
//! and do. Every handler asks one function here per kind of action:
//!
//! - a case (or a task) is visible when the caller's unit contains the case's unit; a case
//!   outside it is reported as not found, so ids do not reveal which cases exist
//!   ([`Principal::require_visible`]). What a caller may do on a visible case's tasks is
//!   the engine core's decision (role, unit, separation of duties);
//! - messages ([`message`]): a message that names roles is the core's decision (sent by
//!   the window's clerk, it is recorded on the applicant's behalf); one that names none is
//!   the applicant's (objection, withdrawal), recorded by front-desk staff on the
//!   applicant's behalf, and the history says so;
//! - corrections of a case's data ([`correct`]): the caller must see the case; whether
//!   their role and unit may correct it is the core's decision (staff of the process's
//!   tasks in the case's unit or above, or a head; open cases only);
//! - definitions, deployments and the access log: administrators ([`admin`]);
//! - payments: the county's staff, heads and administrators ([`payments`]);
//! - incidents: heads and administrators read and retry them ([`incidents`]);
//! - full personal data: the roles whose work needs it ([`reveal`]), every view logged.

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

/// The roles that pay benefits (the county's civil-affairs office) and administrators.
pub const PAYMENT_ROLES: &[&str] = &["county_staff", "county_head", "admin"];
/// Heads of a unit and administrators: they see and retry failed deliveries.
pub const INCIDENT_ROLES: &[&str] = &["township_head", "county_head", "admin"];
/// The roles whose work needs full ID numbers and bank accounts: the front desk checks an
/// applicant's papers, the staff and the county's checking centre compare them with other
/// registers. Heads decide on the file as shown masked; administrators run the system.
pub const REVEAL_ROLES: &[&str] = &["township_clerk", "township_staff", "county_staff"];
/// The roles that record an applicant's own messages (objection, withdrawal) for them.
pub const FRONT_DESK_ROLES: &[&str] = &["township_clerk", "township_staff", "village_worker"];
/// The applicants' window (受理窗口): a message its clerk sends is the applicant's,
/// recorded on their behalf.
pub const APPLICANT_WINDOW_ROLE: &str = "township_clerk";
/// Who an applicant's message is recorded for.
pub const ON_BEHALF_OF_APPLICANT: &str = "applicant";

impl Principal {
    /// Whether the caller holds one of `roles`.
    pub fn has_any(&self, roles: &[&str]) -> bool {
        self.roles.iter().any(|r| roles.contains(&r.as_str()))
    }
}

fn require_role(principal: &Principal, roles: &[&str], what: &str) -> Result<(), ApiError> {
    if principal.has_any(roles) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden",
            format!("{what} needs role {}", roles.join(" or ")),
        ))
    }
}

/// Definitions (validate, deploy, versions), the access log: administrators only.
pub fn admin(principal: &Principal, what: &str) -> Result<(), ApiError> {
    require_role(principal, &[ADMIN_ROLE], what)
}

/// Payment runs, bank files, results and reports.
pub fn payments(principal: &Principal) -> Result<(), ApiError> {
    require_role(principal, PAYMENT_ROLES, "payments")
}

/// Listing and retrying incidents (failed deliveries).
pub fn incidents(principal: &Principal) -> Result<(), ApiError> {
    require_role(principal, INCIDENT_ROLES, "incidents")
}

/// Full ID numbers and bank accounts (the view is written to the access log).
pub fn reveal(principal: &Principal) -> Result<(), ApiError> {
    require_role(principal, REVEAL_ROLES, "unmasked personal data")
}

/// Assessing a household (a calculation on data the caller sends; no case is read).
pub fn assess(principal: &Principal) -> Result<(), ApiError> {
    require_role(
        principal,
        &[
            "township_clerk",
            "township_staff",
            "township_head",
            "county_staff",
            "county_head",
            "admin",
        ],
        "assessment",
    )
}

/// Whether message `name` of a case of `unit`, whose declaration names `roles`, may be
/// sent by the caller; `Ok(Some("applicant"))` when it is the applicant's message recorded
/// on their behalf. A message naming roles is left to the core (role and unit).
pub fn message(
    principal: &Principal,
    unit: &str,
    id: &str,
    roles: &[String],
) -> Result<Option<&'static str>, ApiError> {
    principal.require_visible(unit, "case", id)?;
    if !roles.is_empty() {
        // The window's clerk sends a message the procedure lets the window send (a
        // withdrawal, an objection) for the applicant who came to the window.
        let at_the_window = principal.has_any(&[APPLICANT_WINDOW_ROLE])
            && roles.iter().any(|r| r == APPLICANT_WINDOW_ROLE);
        return Ok(at_the_window.then_some(ON_BEHALF_OF_APPLICANT));
    }
    require_role(
        principal,
        FRONT_DESK_ROLES,
        "recording an applicant's message",
    )?;
    Ok(Some(ON_BEHALF_OF_APPLICANT))
}

/// The role of system administrators (procedures, users, tokens, payments).
pub const ADMIN_ROLE: &str = "admin";

impl Principal {
    /// Whether the caller administers the system.
    pub fn is_admin(&self) -> bool {
        self.has_any(&[ADMIN_ROLE])
    }

    /// `Ok` for an administrator; otherwise the `forbidden` refusal. Every
    /// administration page and action passes through here.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        admin(self, "administration")
    }
}

/// Correcting case `id` of `unit`: visible to the caller; the rest is the core's (role,
/// unit, the case still open), as for the actions on a case's tasks.
pub fn correct(principal: &Principal, unit: &str, id: &str) -> Result<(), ApiError> {
    principal.require_visible(unit, "case", id)
}

/// Reading township reserves: staff and heads of a township or the county, administrators.
pub fn reserves(principal: &Principal) -> Result<(), ApiError> {
    require_role(principal, jiuzhu_adapters::payments::READ_ROLES, "reserves")
}

/// Whether the caller reads the reserve of `unit` (their own township's, or one below).
pub fn reserve_visible(principal: &Principal, unit: &str) -> bool {
    jiuzhu_adapters::payments::may_read(&principal.roles, &principal.unit, unit)
}

/// Replenishing a reserve at all: county staff and administrators.
pub fn reserve_replenishers(principal: &Principal) -> Result<(), ApiError> {
    require_role(
        principal,
        jiuzhu_adapters::payments::REPLENISH_ROLES,
        "replenishing a reserve",
    )
}

/// Replenishing the reserve of `unit`: from a unit above it.
pub fn reserve_replenish(principal: &Principal, unit: &str) -> Result<(), ApiError> {
    if jiuzhu_adapters::payments::may_replenish(&principal.roles, &principal.unit, unit) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden",
            format!("the reserve of {unit} is replenished from a unit above it"),
        ))
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

    fn with_roles(roles: &[&str]) -> Principal {
        Principal {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..principal("市/县/甲镇")
        }
    }

    #[test]
    fn actions_need_their_roles() {
        let clerk = with_roles(&["township_clerk"]);
        let admin_user = with_roles(&["admin"]);
        assert!(admin(&admin_user, "deploy").is_ok());
        assert_eq!(admin(&clerk, "deploy").unwrap_err().status.as_u16(), 403);
        assert!(payments(&clerk).is_err());
        assert!(payments(&with_roles(&["county_staff"])).is_ok());
        assert!(incidents(&with_roles(&["township_head"])).is_ok());
        assert!(incidents(&clerk).is_err());
        assert!(reveal(&clerk).is_ok());
        assert!(reveal(&admin_user).is_err());
        // An applicant's message is the front desk's, on the applicant's behalf.
        assert_eq!(
            message(&clerk, "市/县/甲镇", "c", &[]).ok().flatten(),
            Some(ON_BEHALF_OF_APPLICANT)
        );
        assert!(message(&admin_user, "市/县/甲镇", "c", &[]).is_err());
        // A message naming roles is the core's to decide; the window's clerk sends it
        // for the applicant.
        assert_eq!(
            message(&admin_user, "市/县/甲镇", "c", &["county_staff".into()]).ok(),
            Some(None)
        );
        let window = ["township_clerk".to_string(), "township_head".to_string()];
        assert_eq!(
            message(&clerk, "市/县/甲镇", "c", &window).ok().flatten(),
            Some(ON_BEHALF_OF_APPLICANT)
        );
        assert_eq!(
            message(&with_roles(&["township_head"]), "市/县/甲镇", "c", &window).ok(),
            Some(None)
        );
        assert_eq!(
            message(&clerk, "市/县/乙镇", "c", &[])
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
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
