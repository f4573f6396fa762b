//! Prometheus metrics of the API: requests by route and status, and a latency histogram
//! by route. Kept in the process (each node is scraped on its own).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

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
