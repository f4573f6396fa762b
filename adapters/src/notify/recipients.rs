//! Who a notification goes to: the applicant (from the instance's contact
//! data), every user holding a role over the case's unit, or one named user.
//! Roles that resolve to nobody fall back to the heads of the case's unit;
//! with no head either, resolution fails (the effect becomes an incident).

use jiuzhu_engine::core::is_supervisor_role;
use jiuzhu_engine::effects::typed::{Names, Notification};
use jiuzhu_engine::org::{Org, unit_contains};
use serde::Serialize;
use serde_json::Value as Json;

/// Applicants and staff may be reached over different channels (SMS to the
/// applicant, mail to staff), so every recipient says which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    Applicant,
    Staff,
    /// A department of the notification settings (`to_department`), by its own webhook.
    Department,
}

/// A person to notify and the addresses known for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub kind: RecipientKind,
    /// The org user id of a staff member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Why the recipients of an effect cannot be determined. Each is a problem of
/// the data or the org file, so retrying will not help: the delivery goes to
/// the dead letters for a person to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    #[error(
        "notification {effect}: it names no recipient (`to`, `to_role`, `to_user` or `to_department`)"
    )]
    NoAddressee { effect: String },
    #[error("notification {effect}: `{field}` must be {expected}")]
    Malformed {
        effect: String,
        field: &'static str,
        expected: &'static str,
    },
    #[error("notification {effect}: `to: {value}` is not a recipient (only `applicant`)")]
    UnknownTo { effect: String, value: String },
    #[error(
        "notification {effect}: the applicant has no contact email or phone (instance variable `contact`)"
    )]
    ApplicantWithoutContact { effect: String },
    #[error("notification {effect}: no user `{user}` in the org file")]
    UnknownUser { effect: String, user: String },
    #[error("notification {effect}: no role `{role}` in the org file")]
    UnknownRole { effect: String, role: String },
    #[error("notification {effect}: the instance has no `unit`, so roles cannot be resolved")]
    NoUnit { effect: String },
    #[error(
        "notification {effect}: no user with role {roles} covers the unit `{unit}`, and no head (`*_head` role) of the unit to tell instead"
    )]
    NobodyInUnit {
        effect: String,
        roles: String,
        unit: String,
    },
}

/// The resolved recipients of one notification, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipients(Vec<Recipient>);

impl Recipients {
    /// Resolves the recipients of an outbox JSON effect (tests and tools); the
    /// dispatcher reads the row into its typed form first ([`Recipients::resolve_typed`]).
    pub fn resolve(
        effect: &Json,
        instance_vars: &Json,
        org: &Org,
    ) -> Result<Recipients, RecipientError> {
        let effect_id = effect
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or("(no id)")
            .to_string();
        let present = |name: &str| effect.get(name).filter(|v| !v.is_null());
        let to = match present("to") {
            None => None,
            Some(Json::String(to)) => Some(to.clone()),
            Some(_) => {
                return Err(RecipientError::Malformed {
                    effect: effect_id,
                    field: "to",
                    expected: "the string `applicant`",
                });
            }
        };
        let to_role = present("to_role")
            .map(|roles| {
                strings(roles).ok_or_else(|| RecipientError::Malformed {
                    effect: effect_id.clone(),
                    field: "to_role",
                    expected: "a role id or a list of role ids",
                })
            })
            .transpose()?;
        let to_user = present("to_user")
            .map(|users| {
                strings(users).ok_or_else(|| RecipientError::Malformed {
                    effect: effect_id.clone(),
                    field: "to_user",
                    expected: "a user id or a list of user ids",
                })
            })
            .transpose()?;
        let to_department = match present("to_department") {
            None => None,
            Some(Json::String(d)) if !d.is_empty() => Some(d.clone()),
            Some(_) => {
                return Err(RecipientError::Malformed {
                    effect: effect_id,
                    field: "to_department",
                    expected: "a department of the notification settings",
                });
            }
        };
        Recipients::resolve_fields(
            effect_id,
            to.as_deref(),
            to_role,
            to_user,
            to_department.as_deref(),
            instance_vars,
            org,
        )
    }

    /// Resolves `to: applicant`, `to_role` (a role or a list) and `to_user` (a user id
    /// or a list) of a typed notification; several of them add up.
    pub fn resolve_typed(
        effect_id: &str,
        notice: &Notification,
        instance_vars: &Json,
        org: &Org,
    ) -> Result<Recipients, RecipientError> {
        Recipients::resolve_fields(
            effect_id.to_string(),
            notice.to.as_deref(),
            notice.to_role.as_ref().map(Names::to_vec),
            notice.to_user.as_ref().map(Names::to_vec),
            notice.to_department.as_deref(),
            instance_vars,
            org,
        )
    }

    fn resolve_fields(
        effect_id: String,
        to: Option<&str>,
        to_role: Option<Vec<String>>,
        to_user: Option<Vec<String>>,
        to_department: Option<&str>,
        instance_vars: &Json,
        org: &Org,
    ) -> Result<Recipients, RecipientError> {
        let mut out = Recipients::default();
        let mut addressed = false;

        if let Some(to) = to {
            addressed = true;
            match to {
                "applicant" => out.push(applicant(&effect_id, instance_vars)?),
                other => {
                    return Err(RecipientError::UnknownTo {
                        effect: effect_id,
                        value: other.to_string(),
                    });
                }
            }
        }

        if let Some(roles) = to_role {
            addressed = true;
            let unit = instance_vars
                .get("unit")
                .and_then(Json::as_str)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| RecipientError::NoUnit {
                    effect: effect_id.clone(),
                })?;
            let known = org.role_ids();
            for role in &roles {
                if !known.contains(role) {
                    return Err(RecipientError::UnknownRole {
                        effect: effect_id,
                        role: role.clone(),
                    });
                }
            }
            let before = out.0.len();
            for user in org.users() {
                if roles.iter().any(|r| user.has_role(r)) && unit_contains(&user.unit, unit) {
                    out.push(staff(user));
                }
            }
            // Nobody holds the roles over the unit, or the list is empty (a
            // reminder fired while no task was open): the heads of the case's
            // unit are told instead. With no head either, the effect fails and
            // becomes an incident: it is never "delivered" to no one.
            if out.0.len() == before {
                let heads = heads_of(org, unit);
                if heads.is_empty() {
                    return Err(RecipientError::NobodyInUnit {
                        effect: effect_id,
                        roles: if roles.is_empty() {
                            "(none: no open task)".to_string()
                        } else {
                            roles.join("/")
                        },
                        unit: unit.to_string(),
                    });
                }
                for head in heads {
                    out.push(staff(head));
                }
            }
        }

        if let Some(ids) = to_user {
            addressed = true;
            for id in ids {
                let user = org.user(&id).ok_or_else(|| RecipientError::UnknownUser {
                    effect: effect_id.clone(),
                    user: id.clone(),
                })?;
                out.push(staff(user));
            }
        }

        if let Some(department) = to_department {
            addressed = true;
            if department.is_empty() {
                return Err(RecipientError::Malformed {
                    effect: effect_id,
                    field: "to_department",
                    expected: "a department of the notification settings",
                });
            }
            out.push(Recipient {
                kind: RecipientKind::Department,
                user_id: None,
                name: department.to_string(),
                email: None,
                phone: None,
            });
        }

        if !addressed {
            return Err(RecipientError::NoAddressee { effect: effect_id });
        }
        Ok(out)
    }

    pub fn as_slice(&self) -> &[Recipient] {
        &self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Recipient> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// A user named by role and by id is notified once.
    fn push(&mut self, recipient: Recipient) {
        let duplicate =
            recipient.user_id.is_some() && self.0.iter().any(|r| r.user_id == recipient.user_id);
        if !duplicate {
            self.0.push(recipient);
        }
    }
}

impl IntoIterator for Recipients {
    type Item = Recipient;
    type IntoIter = std::vec::IntoIter<Recipient>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The heads of `unit`: users with a supervisor role (`*_head`, see
/// [`is_supervisor_role`]; not `admin`, who runs the system rather than the
/// office) over the unit, the nearest only — a township's head before the
/// county's.
pub fn heads_of<'o>(org: &'o Org, unit: &str) -> Vec<&'o jiuzhu_engine::org::User> {
    let over: Vec<&jiuzhu_engine::org::User> = org
        .users()
        .iter()
        .filter(|user| {
            user.roles
                .iter()
                .any(|role| role != "admin" && is_supervisor_role(role))
                && unit_contains(&user.unit, unit)
        })
        .collect();
    let nearest = over.iter().map(|user| user.unit.len()).max();
    over.into_iter()
        .filter(|user| Some(user.unit.len()) == nearest)
        .collect()
}

fn strings(value: &Json) -> Option<Vec<String>> {
    match value {
        Json::String(s) => Some(vec![s.clone()]),
        Json::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

fn applicant(effect: &str, instance_vars: &Json) -> Result<Recipient, RecipientError> {
    let contact = instance_vars.get("contact");
    let field = |name: &str| {
        contact
            .and_then(|c| c.get(name))
            .and_then(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let email = field("email");
    let phone = field("phone");
    if email.is_none() && phone.is_none() {
        return Err(RecipientError::ApplicantWithoutContact {
            effect: effect.to_string(),
        });
    }
    let name = instance_vars
        .get("applicant_name")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(Recipient {
        kind: RecipientKind::Applicant,
        user_id: None,
        name,
        email,
        phone,
    })
}

fn staff(user: &jiuzhu_engine::org::User) -> Recipient {
    Recipient {
        kind: RecipientKind::Staff,
        user_id: Some(user.id.clone()),
        name: user.name.clone(),
        email: user.email.clone(),
        phone: user.phone.clone(),
    }
}
