//! `jiuzhu cases`: list and search cases, masked, a page at a time.

use anyhow::Result;
use jiuzhu_engine::store::search::CaseQuery;

use crate::views::{self, View};

/// Filters combine (all must hold); without any, every case is listed, oldest first.
#[derive(clap::Args, Debug)]
pub struct CasesArgs {
    /// Only cases of this procedure (dibao, tekun, …).
    #[arg(long, value_name = "PROCESS")]
    pub process: Option<String>,
    /// Only cases in this status: active, completed, terminated, …
    #[arg(long)]
    pub status: Option<String>,
    /// Only cases of this unit and the units below it (a path such as 双鸭山市/尖山区).
    #[arg(long)]
    pub unit: Option<String>,
    /// Cases whose applicant's name contains this text.
    #[arg(long)]
    pub name: Option<String>,
    /// Cases holding this ID number (spaces and the case of a final X do not matter).
    #[arg(long, value_name = "NUMBER")]
    pub id_number: Option<String>,
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show names and ID numbers unmasked (the output says so).
    #[arg(long)]
    pub reveal: bool,
    /// At most this many cases.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Skip this many matching cases first (for the next page).
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
}

/// The search `args` ask for.
pub fn query(args: &CasesArgs) -> CaseQuery {
    CaseQuery {
        process_id: args.process.clone(),
        status: args.status.clone(),
        unit: args.unit.clone(),
        name: args.name.clone(),
        id_number: args.id_number.clone(),
        limit: args.limit.max(1),
        offset: args.offset,
    }
}

pub async fn run(view: &View<'_>, args: &CasesArgs) -> Result<i32> {
    views::cases(view, &query(args), args.json).await
}
