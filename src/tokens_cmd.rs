//! `jiuzhu tokens`: API tokens for machine clients — create (the token is printed once;
//! optionally narrowed to one of the user's roles and a unit within theirs), revoke, list.

use anyhow::{Result, anyhow};
use clap::Subcommand;

use jiuzhu_engine::core::unit_contains;
use jiuzhu_server::TokenScope;

use crate::lifecycle::Session;
use crate::serve_cmd::server_db;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token acting as USER (their roles and unit); prints it once on stdout.
    Create {
        /// The user the token acts as (their roles and unit).
        #[arg(long)]
        user: String,
        /// What the token is for (shown by `tokens list`).
        #[arg(long, default_value = "")]
        label: String,
        /// Act with this one of the user's roles only.
        #[arg(long)]
        role: Option<String>,
        /// Act on this unit (the user's or one below it) only.
        #[arg(long)]
        unit: Option<String>,
    },
    /// Revoke a token by its id; requests with it get 401 from then on.
    Revoke {
        /// The token's id, as `tokens list` prints it.
        id: String,
    },
    /// Every token: id, user, label, created, revoked.
    List,
}

pub async fn run(session: &Session, command: &TokensCommand) -> Result<i32> {
    let db = server_db(session, false).await?;
    let now = session.engine.now();
    match command {
        TokensCommand::Create {
            user,
            label,
            role,
            unit,
        } => {
            match db.user(user).await.map_err(|e| anyhow!(e))? {
                Some(u) if !u.disabled => {
                    if let Some(role) = role.as_ref().filter(|r| !u.roles.contains(r)) {
                        eprintln!("forbidden: {user} does not hold the role {role}");
                        return Ok(1);
                    }
                    if let Some(unit) = unit.as_ref().filter(|x| !unit_contains(&u.unit, x)) {
                        eprintln!("forbidden: {unit} is not within {user}'s unit {}", u.unit);
                        return Ok(1);
                    }
                }
                Some(_) => {
                    eprintln!("forbidden: user {user} is disabled");
                    return Ok(1);
                }
                None => {
                    eprintln!("not_found: no user {user}");
                    return Ok(1);
                }
            }
            let scope = TokenScope {
                role: role.clone(),
                unit: unit.clone(),
            };
            let token = db
                .create_scoped_token(user, label, &scope, now)
                .await
                .map_err(|e| anyhow!(e))?;
            eprintln!(
                "token {} for {user}: shown once, store it now; send it as Authorization: Bearer TOKEN",
                token.id
            );
            println!("{}", token.token);
            Ok(0)
        }
        TokensCommand::Revoke { id } => {
            if db.revoke_token(id, now).await.map_err(|e| anyhow!(e))? {
                println!("revoked {id}");
                Ok(0)
            } else {
                eprintln!("not_found: no live token {id}");
                Ok(1)
            }
        }
        TokensCommand::List => {
            for token in db.tokens().await.map_err(|e| anyhow!(e))? {
                let revoked = token
                    .revoked_at
                    .map(|at| format!("revoked {}", at.to_rfc3339()))
                    .unwrap_or_else(|| "live".into());
                let scope = format!(
                    "{}@{}",
                    token.scope.role.as_deref().unwrap_or("*"),
                    token.scope.unit.as_deref().unwrap_or("*")
                );
                println!(
                    "{}  {}  {scope}  {}  created {}  {revoked}",
                    token.id,
                    token.user_id,
                    if token.label.is_empty() {
                        "-"
                    } else {
                        &token.label
                    },
                    token.created_at.to_rfc3339()
                );
            }
            Ok(0)
        }
    }
}
