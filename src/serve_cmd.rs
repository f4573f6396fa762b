//! `jiuzhu serve`: the HTTP API and the node's scheduler and dispatcher loop in one
//! process, until Ctrl-C or SIGTERM; `--demo` seeds the demo first.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow};
use jiuzhu_server::{AppState, ServerConfig, ServerDb};

use crate::lifecycle::{self, Session};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Deploy the processes, seed the org's users with demo passwords and a few cases.
    #[arg(long)]
    pub demo: bool,
    /// Behind a reverse proxy: believe its X-Forwarded-For and X-Forwarded-Proto headers.
    #[arg(long)]
    trust_proxy: bool,
    /// Mark the session cookie Secure on every response (TLS terminates in front).
    #[arg(long)]
    secure_cookies: bool,
    /// Notification channels (SMTP, webhook) and retry settings, as for `jiuzhu run`.
    #[arg(long)]
    notify_config: Option<PathBuf>,
    /// The monthly run's schedule and bank-file settings, as for `jiuzhu run`.
    #[arg(long)]
    payments_config: Option<PathBuf>,
}

/// The demo password of a user: printed by `serve --demo`, never used otherwise.
fn demo_password(user: &str) -> String {
    format!("demo-{user}")
}

/// The server's tables, migrated, with every user of org.yaml present (without a password
/// unless `demo`).
pub async fn server_db(session: &Session, demo: bool) -> Result<ServerDb> {
    let engine = &session.engine;
    let db = ServerDb::open(&engine.store)
        .await
        .context("opening the server's tables")?;
    if let Some(org) = engine.project.org.as_ref() {
        let password = |user: &str| demo_password(user);
        let password: Option<&dyn Fn(&str) -> String> = demo.then_some(&password as _);
        db.seed_from_org(org, password, engine.now())
            .await
            .map_err(|e| anyhow!(e))?;
    }
    Ok(db)
}

pub async fn run(session: &Session, args: &ServeArgs) -> Result<i32> {
    if args.demo && lifecycle::demo(session, true).await? != 0 {
        return Ok(1);
    }
    server_db(session, args.demo).await?;
    let config = ServerConfig {
        trust_proxy: args.trust_proxy,
        secure_cookies: args.secure_cookies,
        payments: (args.payments_config.as_deref())
            .map(jiuzhu_adapters::payments::PaymentsConfig::load)
            .transpose()?,
        ..ServerConfig::default()
    };
    let state = AppState::new(session.engine.clone(), config)
        .await
        .map_err(|e| anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("Jiuzhu is serving on http://{address}");
    if args.demo {
        println!("demo logins (user / password), POST /api/login {{\"user\":…,\"password\":…}}:");
        for user in session.engine.project.org.iter().flat_map(|o| o.users()) {
            println!(
                "  {:<14} {:<22} {}",
                user.id,
                demo_password(&user.id),
                user.unit
            );
        }
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let server = jiuzhu_server::serve(listener, state, until(stopped.clone()));
    let scheduler = lifecycle::run_until(
        session,
        false,
        args.notify_config.as_deref(),
        args.payments_config.as_deref(),
        until(stopped),
    );
    let (served, ran) = tokio::join!(server, scheduler);
    signals.abort();
    served.context("serving HTTP")?;
    let code = ran?;
    println!("Jiuzhu stopped");
    Ok(code)
}

/// Ctrl-C, or SIGTERM (what service managers send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
