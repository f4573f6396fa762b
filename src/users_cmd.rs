//! `jiuzhu users`: the server's users — add, set a password, disable or enable, list.
//! Passwords are read from standard input, never from the command line (which other
//! users of the machine can see).

use std::io::BufRead as _;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use jiuzhu_server::{UserError, UserRecord};

use crate::lifecycle::Session;
use crate::serve_cmd::server_db;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a user with roles and a unit (`--password-stdin` sets a password too).
    Add {
        /// The login id (e.g. zx_clerk).
        id: String,
        /// The display name staff see.
        #[arg(long)]
        name: String,
        /// The user's unit, e.g. 双鸭山市/尖山区/中心站街道.
        #[arg(long)]
        unit: String,
        /// A role (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password from the first line of standard input; their sessions end.
    SetPassword {
        /// The login id.
        id: String,
    },
    /// Disable a user: no login, sessions end, API tokens stop working.
    Disable {
        /// The login id.
        id: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The login id.
        id: String,
    },
    /// Every user with roles, unit and whether they can log in.
    List {
        /// One JSON object per user instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("invalid_data: no password on standard input");
    }
    Ok(password)
}

fn fail(e: UserError) -> Result<i32> {
    let code = match &e {
        UserError::NotFound(_) => "not_found",
        UserError::Exists(_) => "duplicate",
        UserError::Invalid(_) | UserError::Secret(_) => "invalid_data",
        UserError::Db(_) => return Err(anyhow!(e)),
    };
    eprintln!("{code}: {e}");
    Ok(1)
}

pub async fn run(session: &Session, command: &UsersCommand) -> Result<i32> {
    let db = server_db(session, false).await?;
    let now = session.engine.now();
    let roles_known = session
        .engine
        .project
        .org
        .as_ref()
        .map(|org| org.role_ids())
        .unwrap_or_default();
    let outcome = match command {
        UsersCommand::Add {
            id,
            name,
            unit,
            roles,
            password_stdin,
        } => {
            if let Some(role) = roles.iter().find(|r| !roles_known.contains(*r)) {
                eprintln!("invalid_data: no role {role} in org.yaml");
                return Ok(1);
            }
            let password = password_stdin.then(read_password).transpose()?;
            let user = UserRecord {
                id: id.clone(),
                name: name.clone(),
                unit: unit.clone(),
                roles: roles.clone(),
                disabled: false,
                has_password: password.is_some(),
            };
            db.add_user(&user, password.as_deref(), now)
                .await
                .map(|()| format!("added {id}"))
        }
        UsersCommand::SetPassword { id } => {
            let password = read_password()?;
            db.set_password(id, &password, now)
                .await
                .map(|()| format!("password of {id} set; their sessions ended"))
        }
        UsersCommand::Disable { id } => db
            .set_disabled(id, true, now)
            .await
            .map(|()| format!("disabled {id}")),
        UsersCommand::Enable { id } => db
            .set_disabled(id, false, now)
            .await
            .map(|()| format!("enabled {id}")),
        UsersCommand::List { json } => {
            let users = db.users().await.map_err(|e| anyhow!(e))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            }
            for user in users.iter().filter(|_| !json) {
                let state = match (user.disabled, user.has_password) {
                    (true, _) => "disabled",
                    (false, true) => "active",
                    (false, false) => "no password",
                };
                println!(
                    "{}  {}  {}  {}  {state}",
                    user.id,
                    user.name,
                    user.roles.join(","),
                    user.unit
                );
            }
            return Ok(0);
        }
    };
    match outcome {
        Ok(message) => {
            println!("{message}");
            Ok(0)
        }
        Err(e) => fail(e),
    }
}
