//! `jiuzhu reserve …`: the township reserve fund (乡镇临时救助备用金) — replenishment by
//! county staff or an administrator above the township, never above the ceiling of the
//! policy in force, and the balances with their entries.

use std::str::FromStr;

use anyhow::Result;
use jiuzhu_adapters::payments::{
    Ledger, ReserveError, ReserveProblem, known_unit, may_read, may_replenish, reserve_ceiling,
};
use rust_decimal::Decimal;

use crate::errors::CliError;
use crate::lifecycle::Session;

#[derive(clap::Subcommand)]
pub enum ReserveCommand {
    /// Add to a township's reserve (county_staff or admin of a unit above it).
    Replenish {
        /// The township unit, e.g. 双鸭山市/尖山区/中心站街道.
        #[arg(long)]
        unit: String,
        /// Yuan, e.g. 5000.00 (positive, whole fen).
        #[arg(long)]
        amount: String,
        /// The user replenishing (a user of org.yaml).
        #[arg(long = "as")]
        user: String,
        /// Why (recorded on the entry).
        #[arg(long)]
        note: Option<String>,
    },
    /// Balances (every reserve, or one unit's with its entries).
    Show {
        /// Only this township's reserve, with its entries (default: every reserve).
        #[arg(long)]
        unit: Option<String>,
        /// Only what this user may read (default: everything, as the operator).
        #[arg(long = "as")]
        user: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_amount(text: &str) -> Result<Decimal, CliError> {
    Decimal::from_str(text.trim()).map_err(|_| {
        CliError::usage(
            "invalid_data",
            format!("--amount {text:?} is not an amount"),
        )
        .hint("write yuan with at most two decimals, e.g. 5000.00")
    })
}

fn unknown_unit(unit: &str) -> CliError {
    CliError::refused("not_found", format!("no unit {unit} in org.yaml"))
}

pub async fn run(session: &Session, command: &ReserveCommand) -> Result<i32> {
    let engine = &session.engine;
    let ledger = Ledger::new(&engine.store);
    let now = engine.now();
    match command {
        ReserveCommand::Replenish {
            unit,
            amount,
            user,
            note,
        } => {
            let actor = session.actor(user)?;
            let amount = parse_amount(amount)?;
            if !known_unit(engine, unit) {
                return Err(unknown_unit(unit).into());
            }
            if !may_replenish(&actor.roles, &actor.unit, unit) {
                return Err(CliError::refused(
                    "forbidden",
                    format!("{user} may not replenish the reserve of {unit}"),
                )
                .hint("county_staff or admin of a unit above the township replenishes")
                .into());
            }
            let ceiling = reserve_ceiling(engine, unit, ledger.today(now));
            match ledger
                .replenish_reserve(unit, amount, ceiling, user, note.as_deref(), now)
                .await
            {
                Ok(balance) => {
                    println!("reserve {unit}: +{amount}, balance {balance}");
                    Ok(0)
                }
                Err(ReserveError::Refused(problem)) => {
                    let mut error = CliError::refused(problem.code(), problem.to_string());
                    if let ReserveProblem::AboveCeiling { room, .. } = &problem {
                        error = error.hint(format!("at most {room} can be added now"));
                    }
                    if matches!(problem, ReserveProblem::BadAmount { .. }) {
                        error.exit = crate::errors::USAGE;
                    }
                    Err(error.into())
                }
                Err(ReserveError::Payment(error)) => Err(error.into()),
            }
        }
        ReserveCommand::Show { unit, user, json } => {
            let reader = user.as_deref().map(|u| session.actor(u)).transpose()?;
            let readable = |u: &str| {
                reader
                    .as_ref()
                    .is_none_or(|a| may_read(&a.roles, &a.unit, u))
            };
            if let Some(unit) = unit {
                if !known_unit(engine, unit) || !readable(unit) {
                    return Err(unknown_unit(unit).into());
                }
                let balance = ledger.reserve_map().await?.remove(unit.as_str());
                let entries = ledger.reserve_entries(unit).await?;
                let ceiling = reserve_ceiling(engine, unit, ledger.today(now));
                if *json {
                    let body = serde_json::json!({
                        "unit": unit,
                        "balance": balance.as_ref().map_or(Decimal::ZERO, |b| b.balance).to_string(),
                        "ceiling": ceiling.map(|c| c.to_string()),
                        "verified": balance.as_ref().is_none_or(|b| b.verified()),
                        "entries": entries,
                    });
                    println!("{}", serde_json::to_string_pretty(&body)?);
                } else {
                    println!(
                        "{unit}\tbalance {}\tceiling {}\t{}",
                        balance.as_ref().map_or(Decimal::ZERO, |b| b.balance),
                        ceiling.map_or_else(|| "none".to_string(), |c| c.to_string()),
                        if balance.as_ref().is_none_or(|b| b.verified()) {
                            "verified"
                        } else {
                            "BALANCE DIFFERS FROM ENTRIES"
                        }
                    );
                    for e in &entries {
                        println!(
                            "{}\t{}\t{}\t{}\t→ {}\t{}\t{}",
                            crate::output::local_time(&e.at, jiuzhu_adapters::payments::BEIJING),
                            e.kind,
                            e.amount,
                            e.delta,
                            e.balance_after,
                            e.case_id.as_deref().or(e.by.as_deref()).unwrap_or("-"),
                            e.note.as_deref().unwrap_or("")
                        );
                    }
                }
                return Ok(0);
            }
            let balances: Vec<_> = ledger
                .reserves()
                .await?
                .into_iter()
                .filter(|b| readable(&b.unit))
                .collect();
            if *json {
                println!("{}", serde_json::to_string_pretty(&balances)?);
            } else if balances.is_empty() {
                println!("no reserves");
            } else {
                println!("unit\tbalance\tentries\tverified");
                for b in &balances {
                    println!("{}\t{}\t{}\t{}", b.unit, b.balance, b.entries, b.verified());
                }
            }
            Ok(0)
        }
    }
}
