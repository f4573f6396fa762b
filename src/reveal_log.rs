//! `--reveal` reads in the access log. The read commands open the database read-only; a
//! read that shows personal data unmasked opens it writable just long enough to append
//! the access-log row (the server's table, through the server crate's function, so the
//! CLI's rows and the API's are one log), before anything is printed. The user is `--as`
//! where the command has it, else `cli:<OS user>`.

use anyhow::{Context as _, Result};
use jiuzhu_engine::clock::{Clock as _, SystemClock};
use jiuzhu_engine::store::Store;
use jiuzhu_server::{AccessRecord, ServerDb};

use crate::cases_cmd::{self, CasesArgs};
use crate::views::{self, ReadSession};

/// Who a CLI read is by when no `--as` names a user of the org.
fn os_user() -> String {
    let name = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    format!("cli:{name}")
}

/// Appends one row (`what`, `subject`) for the read of `session`, by `user` or the OS
/// user. The read is refused when the row cannot be written.
pub async fn record(
    session: &ReadSession,
    user: Option<&str>,
    what: &str,
    subject: &str,
) -> Result<()> {
    let user = user.map_or_else(os_user, str::to_string);
    let store = Store::open(session.db_url())
        .await
        .context("opening the database to record an unmasked view")?;
    let written = async {
        let db = ServerDb::open(&store).await?;
        let record = AccessRecord {
            user: &user,
            what,
            subject,
            address: "local",
            via: "cli",
        };
        db.record_access(SystemClock.now(), &record).await
    }
    .await;
    store.close().await;
    written.context("recording an unmasked view in the access log (nothing shown)")
}

/// `show --reveal` / `history --reveal`: the case, by its full id.
pub async fn case(session: &ReadSession, reveal: bool, what: &str, fragment: &str) -> Result<()> {
    if !reveal {
        return Ok(());
    }
    let id = views::resolve_instance(&session.store, fragment).await?;
    record(session, None, what, &id).await
}

/// `tasks --reveal`: the queue of `user`, by the ids of the cases it lists.
pub async fn tasks(session: &ReadSession, reveal: bool, user: &str) -> Result<()> {
    if !reveal {
        return Ok(());
    }
    let ids = views::task_case_ids(&session.view(true), user).await?;
    record(session, Some(user), "tasks", &ids.join(",")).await
}

/// `cases --reveal`: the ids the listing shows.
pub async fn cases(session: &ReadSession, args: &CasesArgs) -> Result<()> {
    if !args.reveal {
        return Ok(());
    }
    let found = session.store.search_cases(&cases_cmd::query(args)).await?;
    let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
    record(session, None, "cases", &ids.join(",")).await
}
