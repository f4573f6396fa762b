//! Case listing and search, read-only: by procedure, status and unit subtree in SQL, by
//! applicant name and ID number on the case variables; and resolving the short or
//! partial ids staff type into full instance and task ids.
//!
//! Name and ID-number filters read the case variables (JSON state), which no index
//! covers; they run over the rows the SQL filters leave, a page at a time, so memory
//! stays flat. An office's thousands of cases are read in well under a second.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Backend, InstanceFilter, Store, StoreError};
use crate::privacy;

/// Which cases [`Store::search_cases`] returns, oldest first.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery {
    pub process_id: Option<String>,
    pub status: Option<String>,
    /// A unit path: cases of this unit and every unit below it.
    pub unit: Option<String>,
    /// Part of the applicant's name (`applicant_name`, or `payee`).
    pub name: Option<String>,
    /// An ID number anywhere in the case variables (`id_number` fields), as typed.
    pub id_number: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// One case found: its row and the applicant, unmasked (the caller masks for display).
#[derive(Debug, Clone, Serialize)]
pub struct CaseSummary {
    pub id: String,
    pub process_id: String,
    pub process_version: i64,
    pub status: String,
    pub outcome: Option<String>,
    pub unit: String,
    pub applicant_name: Option<String>,
    /// The first ID number of the case variables, if any.
    pub id_number: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The case is in the archive (finished long ago; read-only).
    pub archived: bool,
}

/// What an id fragment typed by a user resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    One(String),
    None,
    /// Several ids match (at most a few are listed).
    Ambiguous(Vec<String>),
}

/// Rows read per round when name or ID-number filters apply.
const SCAN_PAGE: u32 = 500;

impl Store {
    /// The cases matching `query`: the live ones oldest first, then the archived ones
    /// (marked `archived`), `query.limit` at most after skipping `query.offset` matches.
    /// The archive is read only when the live cases do not fill the page.
    pub async fn search_cases(&self, query: &CaseQuery) -> Result<Vec<CaseSummary>, StoreError> {
        let mut found = Vec::new();
        // Matches to skip before the page starts, counted down across live and archive.
        let mut skip = query.offset;
        for archived in [false, true] {
            self.search_in(archived, query, &mut skip, &mut found)
                .await?;
            if found.len() >= query.limit as usize {
                break;
            }
        }
        Ok(found)
    }

    /// One source of [`Store::search_cases`]: appends its matches after `skip` to `found`.
    async fn search_in(
        &self,
        archived: bool,
        query: &CaseQuery,
        skip: &mut u32,
        found: &mut Vec<CaseSummary>,
    ) -> Result<(), StoreError> {
        let filtered = query.name.is_some() || query.id_number.is_some();
        // Without name or ID-number filters the database skips and limits the rows.
        let by_sql = !filtered;
        let wanted = (query.limit as usize).saturating_sub(found.len());
        let mut filter = InstanceFilter {
            process_id: query.process_id.clone(),
            status: query.status.clone(),
            unit: query.unit.clone(),
            limit: if by_sql { wanted as u32 } else { SCAN_PAGE },
            offset: if by_sql { *skip } else { 0 },
        };
        if by_sql && *skip > 0 {
            // The rows skipped here are no longer to skip in the next source.
            let total = self.count_in(archived, &filter).await?;
            let skipped = (*skip).min(u32::try_from(total).unwrap_or(u32::MAX));
            *skip -= skipped;
        }
        loop {
            let rows = if archived {
                self.list_archived(&filter).await?
            } else {
                self.list_instances(&filter).await?
            };
            let page_len = rows.len();
            for row in rows {
                let state: serde_json::Value =
                    serde_json::from_str(row.state.as_str()).unwrap_or_default();
                let vars = &state["vars"];
                let summary = CaseSummary {
                    applicant_name: applicant_name(vars),
                    id_number: id_numbers(vars).into_iter().next(),
                    id: row.id,
                    process_id: row.process_id,
                    process_version: row.process_version,
                    status: row.status,
                    outcome: row.outcome,
                    unit: row.unit,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                    archived,
                };
                if filtered {
                    if !matches(vars, &summary, query) {
                        continue;
                    }
                    if *skip > 0 {
                        *skip -= 1;
                        continue;
                    }
                }
                found.push(summary);
                if found.len() >= query.limit as usize {
                    return Ok(());
                }
            }
            if by_sql || page_len < filter.limit as usize {
                return Ok(());
            }
            filter.offset += filter.limit;
        }
    }

    /// How many cases of one source `filter` selects (its limit and offset aside).
    async fn count_in(&self, archived: bool, filter: &InstanceFilter) -> Result<i64, StoreError> {
        let table = if archived {
            "archived_instances"
        } else {
            "instances"
        };
        let mut sql = format!("SELECT COUNT(*) FROM {table} WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(process_id) = &filter.process_id {
            binds.push(process_id.clone());
            sql.push_str(&format!(" AND process_id = ${}", binds.len()));
        }
        if let Some(status) = &filter.status {
            binds.push(status.clone());
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        if let Some(unit) = &filter.unit {
            let (unit, low, high) = super::shared::subtree_bounds(unit);
            let n = binds.len();
            binds.extend([unit, low, high]);
            sql.push_str(&format!(
                " AND (unit = ${} OR (unit >= ${} AND unit < ${}))",
                n + 1,
                n + 2,
                n + 3
            ));
        }
        match &self.backend {
            Backend::Sqlite(s) => {
                let mut query = sqlx::query_scalar(&sql);
                for bind in &binds {
                    query = query.bind(bind);
                }
                query
                    .fetch_one(&s.reader)
                    .await
                    .map_err(super::sqlite::classify)
            }
            Backend::Postgres(p) => {
                let mut query = sqlx::query_scalar(&sql);
                for bind in &binds {
                    query = query.bind(bind);
                }
                query
                    .fetch_one(&p.reader)
                    .await
                    .map_err(super::postgres::classify)
            }
        }
    }

    /// The instance id `fragment` stands for: the id itself, a unique prefix, or a unique
    /// ending (the short form `jiuzhu tasks` prints: the last 8 characters).
    /// A case in the archive is found when no live case matches.
    pub async fn resolve_instance_id(&self, fragment: &str) -> Result<Resolved, StoreError> {
        match self.resolve_id("instances", fragment).await? {
            Resolved::None => self.resolve_id("archived_instances", fragment).await,
            resolved => Ok(resolved),
        }
    }

    /// The task id `fragment` stands for: the id itself, a unique prefix, or a unique
    /// ending such as the short form `f02d681b-t2`.
    pub async fn resolve_task_id(&self, fragment: &str) -> Result<Resolved, StoreError> {
        self.resolve_id("tasks", fragment).await
    }

    /// How many effects of `kind` (`payment`, `notification`, …) wait in the outbox,
    /// for a command to say what it is waiting for.
    pub async fn pending_effects(&self, kind: &str) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND kind = $1";
        match &self.backend {
            Backend::Sqlite(s) => sqlx::query_scalar(sql)
                .bind(kind)
                .fetch_one(&s.reader)
                .await
                .map_err(super::sqlite::classify),
            Backend::Postgres(p) => sqlx::query_scalar(sql)
                .bind(kind)
                .fetch_one(&p.reader)
                .await
                .map_err(super::postgres::classify),
        }
    }

    async fn resolve_id(&self, table: &str, fragment: &str) -> Result<Resolved, StoreError> {
        let fragment = fragment.trim();
        // Ids are letters, digits, `-` and `_`; anything else cannot match, and `%` or `_`
        // would be a LIKE wildcard.
        if fragment.is_empty()
            || !fragment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Ok(Resolved::None);
        }
        let escaped = fragment.replace('_', "\\_");
        let sql = format!(
            "SELECT id FROM {table} WHERE id = $1 OR id LIKE $2 ESCAPE '\\' \
             OR id LIKE $3 ESCAPE '\\' ORDER BY id LIMIT 6"
        );
        let prefix = format!("{escaped}%");
        let suffix = format!("%{escaped}");
        let ids: Vec<String> = match &self.backend {
            Backend::Sqlite(s) => sqlx::query_scalar(&sql)
                .bind(fragment)
                .bind(&prefix)
                .bind(&suffix)
                .fetch_all(&s.reader)
                .await
                .map_err(super::sqlite::classify)?,
            Backend::Postgres(p) => sqlx::query_scalar(&sql)
                .bind(fragment)
                .bind(&prefix)
                .bind(&suffix)
                .fetch_all(&p.reader)
                .await
                .map_err(super::postgres::classify)?,
        };
        Ok(if ids.iter().any(|id| id == fragment) {
            Resolved::One(fragment.to_string())
        } else {
            match ids.len() {
                0 => Resolved::None,
                1 => Resolved::One(ids[0].clone()),
                _ => Resolved::Ambiguous(ids),
            }
        })
    }
}

fn applicant_name(vars: &serde_json::Value) -> Option<String> {
    ["applicant_name", "payee"]
        .iter()
        .find_map(|key| vars[*key].as_str().map(str::to_string))
}

/// Every `id_number` string of the variables, at any depth, in document order.
pub fn id_numbers(vars: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_id_numbers(vars, &mut found);
    found
}

fn collect_id_numbers(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, field) in map {
                match (privacy::personal_field(key), field.as_str()) {
                    (Some(privacy::Personal::IdNumber), Some(text)) if !text.is_empty() => {
                        found.push(text.to_string());
                    }
                    _ => collect_id_numbers(field, found),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_id_numbers(item, found);
            }
        }
        _ => {}
    }
}

fn matches(vars: &serde_json::Value, summary: &CaseSummary, query: &CaseQuery) -> bool {
    if let Some(name) = query.name.as_deref().map(str::trim) {
        let named = summary
            .applicant_name
            .as_deref()
            .is_some_and(|n| !name.is_empty() && n.contains(name));
        if !named {
            return false;
        }
    }
    match &query.id_number {
        Some(wanted) => id_numbers(vars)
            .iter()
            .any(|n| privacy::same_id_number(n, wanted)),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[test]
    fn fragments_that_cannot_be_ids_resolve_to_nothing() {
        // Wildcards and spaces are no part of an id: they match nothing, not everything.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let store = Store::open("sqlite::memory:").await.expect("store");
            for fragment in ["", "%", "a_%", "x y"] {
                assert_eq!(
                    store.resolve_instance_id(fragment).await.expect("query"),
                    Resolved::None,
                    "{fragment:?}"
                );
            }
            assert_eq!(store.pending_effects("payment").await.expect("count"), 0);
        });
    }

    #[test]
    fn a_read_only_open_neither_creates_nor_migrates() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("x.db");
        let url = path.display().to_string();
        let read_only = StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        };
        runtime.block_on(async {
            assert!(Store::open_with(&url, read_only.clone()).await.is_err());
            assert!(!path.exists(), "a read-only open created the file");
            let store = Store::open(&url).await.expect("create");
            store.close().await;
            let reader = Store::open_with(&url, read_only).await.expect("read-only");
            let none = reader
                .search_cases(&CaseQuery {
                    name: Some("张".into()),
                    limit: 10,
                    ..CaseQuery::default()
                })
                .await
                .expect("search");
            assert!(none.is_empty());
            reader.close().await;
        });
    }
}
