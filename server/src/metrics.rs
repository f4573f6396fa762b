//! Prometheus metrics: requests by route and status and a latency histogram by route,
//! kept in the process (each node is scraped on its own); and the work in the database,
//! read at each scrape (steps, queues by role and unit, overdue tasks, timer lag, outbox
//! backlog, incidents), the same figures whichever node is asked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::{DbError, ServerDb, on_pool};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// A gauge to append to the exposition: name, help text, and values by label set
/// (`process="dibao"`; empty for none).
pub struct Gauge<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub values: Vec<(String, i64)>,
}

/// The registry of one server.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Counts a finished request of `route` (the route's template, never its ids).
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let h = latency.entry(route.to_string()).or_default();
            let seconds = elapsed.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// The text exposition, with `gauges` (name, help, value) appended.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        out.push_str("# HELP jiuzhu_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE jiuzhu_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, route, status), n) in requests.iter() {
                let _ = writeln!(
                    out,
                    "jiuzhu_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP jiuzhu_http_request_duration_seconds Time to answer a request, by route.\n",
        );
        out.push_str("# TYPE jiuzhu_http_request_duration_seconds histogram\n");
        if let Ok(latency) = self.latency.lock() {
            for (route, h) in latency.iter() {
                let route = escape(route);
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "jiuzhu_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "jiuzhu_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "jiuzhu_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "jiuzhu_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        for Gauge { name, help, values } in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, value) in values {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}

/// A figure of the database, as of one scrape.
#[derive(Debug, Clone, Default)]
pub struct WorkFigures {
    /// History rows: every step ever committed.
    pub steps: i64,
    /// Open tasks by (role, unit): what each queue holds.
    pub queues: Vec<(String, String, i64)>,
    /// Open tasks past their due time, by unit.
    pub overdue: Vec<(String, i64)>,
    /// How long the oldest timer that could fire has been due, in seconds (0 when none is).
    pub timer_lag_seconds: f64,
    /// Outbox effects waiting to be delivered.
    pub outbox_pending: i64,
    /// Outbox effects given up on (incidents until an operator retries them).
    pub incidents: i64,
}

impl ServerDb {
    /// The work figures as of `now`. Every query reads an index (`task_roles_inbox`,
    /// `timers_available`, the outbox's partial indexes) except the count of history rows.
    pub async fn work_figures(&self, now: DateTime<Utc>) -> Result<WorkFigures, DbError> {
        let now_ms = now.timestamp_millis();
        let steps: i64 = on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM history")
            .fetch_one(pool)
            .await)?;
        let queues: Vec<(String, String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT role, unit, COUNT(*) FROM task_roles GROUP BY role, unit ORDER BY role, unit",
        )
        .fetch_all(pool)
        .await)?;
        let overdue: Vec<(String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT unit, COUNT(DISTINCT task_id) FROM task_roles \
             WHERE due_at IS NOT NULL AND due_at < $1 GROUP BY unit ORDER BY unit",
        )
        .bind(now_ms)
        .fetch_all(pool)
        .await)?;
        let oldest: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT MIN(available_at) FROM timers",
        )
        .fetch_one(pool)
        .await)?;
        let outbox_pending: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
        )
        .fetch_one(pool)
        .await)?;
        let incidents: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE status = 'dead'",
        )
        .fetch_one(pool)
        .await)?;
        let timer_lag_seconds = oldest
            .map(|due| (now_ms - due).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        Ok(WorkFigures {
            steps,
            queues,
            overdue,
            timer_lag_seconds,
            outbox_pending,
            incidents,
        })
    }
}

impl WorkFigures {
    /// The figures in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "jiuzhu_steps_total",
            "counter",
            "Steps committed (history rows), by every node.",
        );
        let _ = writeln!(out, "jiuzhu_steps_total {}", self.steps);
        family(
            &mut out,
            "jiuzhu_queue_tasks",
            "gauge",
            "Open tasks in each queue, by role and unit.",
        );
        for (role, unit, n) in &self.queues {
            let _ = writeln!(
                out,
                "jiuzhu_queue_tasks{{role=\"{}\",unit=\"{}\"}} {n}",
                escape(role),
                escape(unit)
            );
        }
        family(
            &mut out,
            "jiuzhu_overdue_tasks",
            "gauge",
            "Open tasks past their due time, by unit.",
        );
        for (unit, n) in &self.overdue {
            let _ = writeln!(out, "jiuzhu_overdue_tasks{{unit=\"{}\"}} {n}", escape(unit));
        }
        family(
            &mut out,
            "jiuzhu_timer_lag_seconds",
            "gauge",
            "How long the oldest timer that could fire has been due.",
        );
        let _ = writeln!(out, "jiuzhu_timer_lag_seconds {}", self.timer_lag_seconds);
        family(
            &mut out,
            "jiuzhu_outbox_backlog",
            "gauge",
            "Outbox effects waiting for delivery.",
        );
        let _ = writeln!(out, "jiuzhu_outbox_backlog {}", self.outbox_pending);
        family(
            &mut out,
            "jiuzhu_incidents",
            "gauge",
            "Outbox effects given up on (see jiuzhu incidents).",
        );
        let _ = writeln!(out, "jiuzhu_incidents {}", self.incidents);
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status_with_buckets() {
        let m = Metrics::default();
        m.observe("GET", "/api/cases/{id}", 200, Duration::from_millis(3));
        m.observe("GET", "/api/cases/{id}", 404, Duration::from_millis(30));
        let text = m.render(&[Gauge {
            name: "jiuzhu_open_tasks",
            help: "Open tasks.",
            values: vec![(String::new(), 7)],
        }]);
        assert!(text.contains(
            "jiuzhu_http_requests_total{method=\"GET\",route=\"/api/cases/{id}\",status=\"404\"} 1"
        ));
        assert!(text.contains(
            "jiuzhu_http_request_duration_seconds_bucket{route=\"/api/cases/{id}\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "jiuzhu_http_request_duration_seconds_bucket{route=\"/api/cases/{id}\",le=\"0.05\"} 2"
        ));
        assert!(text.contains("jiuzhu_open_tasks 7"));
    }
}
