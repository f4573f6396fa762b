//! `jiuzhu tokens`: API tokens for machine clients — create (the token is printed once),
//! revoke, list.

use anyhow::{Result, anyhow};
use clap::Subcommand;

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
        TokensCommand::Create { user, label } => {
            match db.user(user).await.map_err(|e| anyhow!(e))? {
                Some(u) if !u.disabled => {}
                Some(_) => {
                    eprintln!("forbidden: user {user} is disabled");
                    return Ok(1);
                }
                None => {
                    eprintln!("not_found: no user {user}");
                    return Ok(1);
                }
            }
            let token = db
                .create_token(user, label, now)
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
                println!(
                    "{}  {}  {}  created {}  {revoked}",
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
