//! `jiuzhu assess --policy P --case C [--explain]`: the assessment of assess.md as
//! a command — one JSON object on stdout (exit 0), or one line per input problem
//! on stderr naming the file and the JSON path / YAML key (exit 2). The case is
//! read as strict JSON (a key given twice is refused) within the default
//! [`InputLimits`].

use std::io::Write;
use std::path::Path;

use jiuzhu_rules::{
    InputLimits, Policy, RuleSet, check_policy_applies, parse_case_text, try_assess,
};

/// Exit code for valid input, eligible or not.
pub const EXIT_OK: i32 = 0;
/// Exit code for a rule set that failed while evaluating (a defect, not bad input).
pub const EXIT_RULE_FAILURE: i32 = 1;
/// Exit code for invalid input: nothing is printed on stdout.
pub const EXIT_INVALID_INPUT: i32 = 2;

/// Runs the command; returns the process exit code.
pub fn run(policy: &Path, case: &Path, rules_dir: Option<&Path>, explain: bool) -> i32 {
    let mut problems: Vec<String> = Vec::new();
    let policy_name = policy.display().to_string();
    let case_name = case.display().to_string();

    let policy = match std::fs::read_to_string(policy) {
        Ok(src) => match Policy::from_yaml(&src, &policy_name) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.extend(e.lines());
                None
            }
        },
        Err(e) => {
            problems.push(format!("{policy_name}: cannot read: {e}"));
            None
        }
    };

    let limits = InputLimits::default();
    let case = match read_bounded(case, &limits) {
        Ok(src) => match parse_case_text(&src, &limits) {
            Ok(c) => Some(c),
            Err(errors) => {
                problems.extend(
                    errors
                        .iter()
                        .map(|e| format!("{case_name}: {}: {}", e.path, e.message)),
                );
                None
            }
        },
        Err(e) => {
            problems.push(format!("{case_name}: {e}"));
            None
        }
    };

    let rules = match rules_dir {
        None => Some(RuleSet::builtin()),
        Some(dir) => match RuleSet::load_dir(dir) {
            Ok(r) => Some(r),
            Err(e) => {
                problems.extend(e.to_string().lines().map(str::to_string));
                None
            }
        },
    };

    if let (Some(p), Some(c)) = (&policy, &case)
        && let Err(e) = check_policy_applies(p, c)
    {
        problems.push(format!("{case_name}: {}: {}", e.path, e.message));
    }

    let (Some(policy), Some(case), Some(rules), true) = (policy, case, rules, problems.is_empty())
    else {
        for p in &problems {
            eprintln!("{p}");
        }
        return EXIT_INVALID_INPUT;
    };

    match try_assess(&rules, &policy, &case) {
        Ok(assessment) => {
            let json = if explain {
                assessment.to_json_with_trace()
            } else {
                assessment.to_json()
            };
            match serde_json::to_string_pretty(&json) {
                Ok(text) => {
                    // A closed pipe (e.g. `| head`) is not worth a panic.
                    let mut out = std::io::stdout().lock();
                    match writeln!(out, "{text}").and_then(|()| out.flush()) {
                        Ok(()) => EXIT_OK,
                        Err(e) => {
                            eprintln!("cannot write the assessment: {e}");
                            EXIT_RULE_FAILURE
                        }
                    }
                }
                Err(e) => {
                    eprintln!("cannot write the assessment: {e}");
                    EXIT_RULE_FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_RULE_FAILURE
        }
    }
}

/// Reads a file as text, refusing one larger than the limits allow for a case
/// without reading it all.
fn read_bounded(path: &Path, limits: &InputLimits) -> Result<String, String> {
    use std::io::Read;
    let cap = limits.max_text_bytes();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1))
                .read_to_end(&mut bytes)
        })
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > cap {
        return Err(format!("$: input_too_large: more than {cap} bytes"));
    }
    String::from_utf8(bytes).map_err(|e| format!("cannot read: {e}"))
}
