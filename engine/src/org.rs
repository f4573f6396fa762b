//! The organisation: roles (id → Chinese label), users with their roles and
//! units, and the unit containment rule that decides who may act on a task.
//!
//! Read from `processes/org.yaml`. Units are paths `市/县区/乡镇街道[/村社区]`;
//! a user may act on tasks of their own unit and of every unit below it.

use jiuzhu_rules::yaml::ErrorAt;

use crate::core::Actor;
/// The one rule of jurisdiction, the core's: a user acts on their unit and those below it.
pub use crate::core::unit_contains;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// Errors of loading the org file, each with its position when it has one.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("{file}: cannot read the org file: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub unit: String,
    /// Where notifications to this user go (optional: not every user gets mail).
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl User {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// This user acting: their roles in their unit.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.id.clone(),
            roles: self.roles.clone(),
            unit: self.unit.clone(),
        }
    }
}

/// Roles and users.
#[derive(Debug, Clone, Default)]
pub struct Org {
    roles: BTreeMap<String, String>,
    users: Vec<User>,
    /// Payment purposes besides the assessment programs (id → Chinese label).
    purposes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    roles: BTreeMap<String, String>,
    #[serde(default)]
    users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    purposes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    id: String,
    name: String,
    roles: Vec<Spanned<String>>,
    unit: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

impl Org {
    pub fn load(path: &Path) -> Result<Org, OrgError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| OrgError::Io {
            file: file.clone(),
            source,
        })?;
        Org::from_yaml(&src, &file)
    }

    /// Parses an org file's text; `file` names it in errors.
    pub fn from_yaml(src: &str, file: &str) -> Result<Org, OrgError> {
        let invalid = |line: u64, column: u64, message: String| OrgError::Invalid {
            file: file.to_string(),
            line,
            column,
            message,
        };
        let raw: RawOrg = serde_saphyr::from_str(src).map_err(|err| {
            let ErrorAt {
                line,
                column,
                message,
            } = ErrorAt::of(&err);
            invalid(line, column, message)
        })?;
        let mut seen = BTreeSet::new();
        let mut users = Vec::new();
        for user in raw.users {
            let at = user.referenced;
            let user = user.value;
            if !seen.insert(user.id.clone()) {
                return Err(invalid(
                    at.line(),
                    at.column(),
                    format!("duplicate user id `{}`", user.id),
                ));
            }
            for role in &user.roles {
                if !raw.roles.contains_key(&role.value) {
                    let r = role.referenced;
                    return Err(invalid(
                        r.line(),
                        r.column(),
                        format!("user `{}` has the unknown role `{}`", user.id, role.value),
                    ));
                }
            }
            if user.unit.is_empty() || user.unit.split('/').any(str::is_empty) {
                return Err(invalid(
                    at.line(),
                    at.column(),
                    format!(
                        "user `{}`: unit `{}` is not a path like 市/县区/乡镇街道",
                        user.id, user.unit
                    ),
                ));
            }
            users.push(User {
                id: user.id,
                name: user.name,
                roles: user.roles.into_iter().map(|r| r.value).collect(),
                unit: user.unit,
                email: user.email,
                phone: user.phone,
            });
        }
        Ok(Org {
            roles: raw.roles,
            users,
            purposes: raw.purposes,
        })
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The payment purposes the org declares besides the assessment programs
    /// (`purposes:`; a payment's `purpose` is one of these or a program).
    pub fn purpose_ids(&self) -> BTreeSet<String> {
        self.purposes.keys().cloned().collect()
    }

    pub fn role_ids(&self) -> BTreeSet<String> {
        self.roles.keys().cloned().collect()
    }

    /// The Chinese label of a role.
    pub fn role_label(&self, role: &str) -> Option<&str> {
        self.roles.get(role).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_contain_themselves_and_the_units_below() {
        let county = "双鸭山市/尖山区";
        assert!(unit_contains(county, county));
        assert!(unit_contains(county, "双鸭山市/尖山区/富安街道"));
        assert!(unit_contains(county, "双鸭山市/尖山区/富安街道/安邦社区"));
        assert!(!unit_contains(county, "双鸭山市/尖山区二"));
        assert!(!unit_contains("双鸭山市/尖山区/富安街道", county));
        assert!(!unit_contains(
            "双鸭山市/尖山区/富安街道",
            "双鸭山市/尖山区/中心站街道"
        ));
    }

    #[test]
    fn the_shipped_org_file_loads_with_the_eight_roles() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes/org.yaml");
        let org = Org::load(&path).expect("org.yaml loads");
        let roles: Vec<String> = org.role_ids().into_iter().collect();
        assert_eq!(
            roles,
            [
                "admin",
                "committee_member",
                "county_head",
                "county_staff",
                "township_clerk",
                "township_head",
                "township_staff",
                "village_worker"
            ]
        );
        assert_eq!(
            org.role_label("township_clerk"),
            Some("乡镇（街道）受理窗口")
        );
        let head = org.user("fa_head").expect("a demo township head");
        assert!(head.has_role("township_head"));
        assert!(unit_contains(
            &head.unit,
            "双鸭山市/尖山区/富安街道/安邦社区"
        ));
        for role in &roles {
            assert!(
                org.users().iter().any(|u| u.has_role(role)),
                "no demo user for {role}"
            );
        }
    }

    #[test]
    fn an_unknown_role_is_reported_with_its_position() {
        let src = "roles: {a: A}\nusers:\n  - {id: u, name: U, roles: [b], unit: x/y}\n";
        let err = Org::from_yaml(src, "org.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "org.yaml:3:30: user `u` has the unknown role `b`"
        );
    }
}
