//! The bank's result file: one verdict per payment reference (paid, or failed with a
//! reason), read whole and checked before any of it is recorded.

use std::path::Path;

use super::PaymentError;

/// The process a failed payment opens: task `fix_account` for the case's township staff.
pub const FIX_PROCESS: &str = "payment_fix";

/// The bank's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    Paid,
    Failed,
}

impl ResultOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultOutcome::Paid => "paid",
            ResultOutcome::Failed => "failed",
        }
    }

    /// Banks write `paid`/`success`/`ok`/`成功` and `failed`/`failure`/`error`/`失败`.
    pub fn parse(text: &str) -> Option<ResultOutcome> {
        match text.trim().to_lowercase().as_str() {
            "paid" | "success" | "succeeded" | "ok" | "成功" => Some(ResultOutcome::Paid),
            "failed" | "failure" | "fail" | "error" | "失败" => Some(ResultOutcome::Failed),
            _ => None,
        }
    }
}

/// One line of a result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentResult {
    pub reference: String,
    pub outcome: ResultOutcome,
    pub reason: Option<String>,
}

/// What is wrong with a line of a result file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultProblem {
    #[error("the header must name the columns `reference` and `status` (and optionally `reason`)")]
    MissingColumns,
    #[error("no reference")]
    NoReference,
    #[error("status {0:?} is neither paid nor failed")]
    UnknownStatus(String),
    #[error("a failed payment needs a reason")]
    FailureWithoutReason,
    #[error("not valid CSV: {0}")]
    Malformed(String),
}

/// What recording results did, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcileSummary {
    pub paid: Vec<String>,
    pub failed: Vec<String>,
    /// Reported before with the same verdict: nothing changed.
    pub repeated: Vec<String>,
    /// Reported before with another verdict: the first stands, these need a person to look.
    pub contradicting: Vec<String>,
    /// No such payment reference.
    pub unknown: Vec<String>,
    /// Payments of a closed month: their results are not recorded.
    pub closed: Vec<String>,
    /// `payment_fix` instances opened, as (failed reference, instance id).
    pub fix_tasks: Vec<(String, String)>,
}

/// Reads a result file: CSV (UTF-8, optional BOM) with a header naming `reference`,
/// `status` and optionally `reason`, in any order. Lines starting with `#` and a trailing
/// control line (`TOTAL,…`) are skipped.
pub fn read_result_file(path: &Path) -> Result<Vec<PaymentResult>, PaymentError> {
    let bytes = std::fs::read(path).map_err(|source| PaymentError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_result_file(&bytes, path)
}

/// [`read_result_file`] on a file's bytes (an upload); `path` names it in errors.
pub fn parse_result_file(bytes: &[u8], path: &Path) -> Result<Vec<PaymentResult>, PaymentError> {
    let text = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let problem = |line: u64, problem| PaymentError::ResultFile {
        path: path.to_owned(),
        line,
        problem,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text);
    let headers = reader
        .headers()
        .map_err(|e| problem(1, ResultProblem::Malformed(e.to_string())))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(reference_at), Some(status_at)) = (column("reference"), column("status")) else {
        return Err(problem(1, ResultProblem::MissingColumns));
    };
    let reason_at = column("reason");
    let mut results = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            problem(line, ResultProblem::Malformed(e.to_string()))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |at: usize| record.get(at).unwrap_or_default().to_owned();
        // The control line, as on the bank files we send.
        if record
            .get(0)
            .is_some_and(|c| c.eq_ignore_ascii_case("total"))
        {
            continue;
        }
        let reference = cell(reference_at);
        if reference.is_empty() {
            return Err(problem(line, ResultProblem::NoReference));
        }
        let status = cell(status_at);
        let outcome = ResultOutcome::parse(&status)
            .ok_or_else(|| problem(line, ResultProblem::UnknownStatus(status.clone())))?;
        let reason = reason_at.map(cell).filter(|r| !r.is_empty());
        if outcome == ResultOutcome::Failed && reason.is_none() {
            return Err(problem(line, ResultProblem::FailureWithoutReason));
        }
        results.push(PaymentResult {
            reference,
            outcome,
            reason,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<PaymentResult>, PaymentError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("result.csv");
        std::fs::write(&path, text).expect("write");
        read_result_file(&path)
    }

    #[test]
    fn a_result_file_reads_in_any_column_order() {
        let results = read(
            "\u{feff}status,reference,reason\n成功,a:2026-03,\nfailed,b:2026-03,账户已销户\nTOTAL,2,1410.00\n",
        )
        .expect("valid");
        assert_eq!(
            results,
            vec![
                PaymentResult {
                    reference: "a:2026-03".into(),
                    outcome: ResultOutcome::Paid,
                    reason: None
                },
                PaymentResult {
                    reference: "b:2026-03".into(),
                    outcome: ResultOutcome::Failed,
                    reason: Some("账户已销户".into())
                },
            ]
        );
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        let cases = [
            ("ref,state\nx,paid\n", 1, ResultProblem::MissingColumns),
            (
                "reference,status\nx,maybe\n",
                2,
                ResultProblem::UnknownStatus("maybe".into()),
            ),
            (
                "reference,status\nx,paid\ny,failed\n",
                3,
                ResultProblem::FailureWithoutReason,
            ),
            ("reference,status\n,paid\n", 2, ResultProblem::NoReference),
        ];
        for (text, expected_line, expected) in cases {
            match read(text) {
                Err(PaymentError::ResultFile { line, problem, .. }) => {
                    assert_eq!((line, problem), (expected_line, expected), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
