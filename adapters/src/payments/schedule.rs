//! When the monthly payment run happens (a cron expression in local time, by default
//! 09:00 on the 5th) and the rest of the payments configuration.

use jiuzhu_rules::yaml::SourceError;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use serde::Deserialize;

use super::PaymentError;
use super::bank_file::BankFileConfig;
use super::gateway::GatewayConfig;
use super::model::YearMonth;

/// UTC+08:00, the offices' local time.
pub const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+08:00 is a valid offset"),
};

/// The cron expression of the monthly run (`sec min hour day-of-month month day-of-week`).
#[derive(Debug, Clone)]
pub struct RunSchedule {
    expression: String,
    schedule: cron::Schedule,
}

impl RunSchedule {
    /// 09:00 on the 5th of each month.
    pub const DEFAULT: &'static str = "0 0 9 5 * *";

    pub fn parse(expression: &str) -> Result<RunSchedule, PaymentError> {
        let schedule =
            cron::Schedule::from_str(expression).map_err(|source| PaymentError::Schedule {
                expression: expression.to_owned(),
                source,
            })?;
        Ok(RunSchedule {
            expression: expression.to_owned(),
            schedule,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The month whose run is due at `now`: the current local month once its first
    /// occurrence of the schedule has passed, else `None`.
    pub fn due_month(&self, now: DateTime<Utc>, offset: FixedOffset) -> Option<YearMonth> {
        let local = now.with_timezone(&offset);
        let month = YearMonth::of(local.date_naive());
        let month_start = offset
            .from_local_datetime(&month.first_day().and_hms_opt(0, 0, 0)?)
            .single()?;
        let first = self
            .schedule
            .after(&(month_start - Duration::seconds(1)))
            .next()?;
        (YearMonth::of(first.date_naive()) == month && first <= local).then_some(month)
    }
}

impl Default for RunSchedule {
    fn default() -> Self {
        RunSchedule {
            expression: RunSchedule::DEFAULT.to_owned(),
            schedule: cron::Schedule::from_str(RunSchedule::DEFAULT)
                .expect("the default run schedule is a valid cron expression"),
        }
    }
}

impl<'de> Deserialize<'de> for RunSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RunSchedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `payments.yaml`: every setting has a default, so the file is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// When the monthly run is due (local time).
    pub run_schedule: RunSchedule,
    /// Hours east of UTC of the offices' local time (dates in effects are local).
    pub utc_offset_hours: i32,
    /// Where bank files are written.
    pub bank_dir: PathBuf,
    pub bank_file: BankFileConfig,
    pub gateway: Option<GatewayConfig>,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            run_schedule: RunSchedule::default(),
            utc_offset_hours: 8,
            bank_dir: PathBuf::from("data/bank"),
            bank_file: BankFileConfig::default(),
            gateway: None,
        }
    }
}

impl PaymentsConfig {
    pub fn load(path: &Path) -> Result<PaymentsConfig, PaymentError> {
        let text = std::fs::read_to_string(path).map_err(|source| PaymentError::Io {
            path: path.to_owned(),
            source,
        })?;
        let config: PaymentsConfig =
            serde_saphyr::from_str(&text).map_err(|error| PaymentError::Config {
                path: path.to_owned(),
                source: SourceError::from_config_yaml(&path.display().to_string(), &text, &error),
            })?;
        if !(-12..=14).contains(&config.utc_offset_hours) {
            return Err(PaymentError::UtcOffset(config.utc_offset_hours));
        }
        Ok(config)
    }

    /// The local time offset; an out-of-range setting (refused by [`PaymentsConfig::load`])
    /// falls back to Beijing time.
    pub fn utc_offset(&self) -> FixedOffset {
        FixedOffset::east_opt(self.utc_offset_hours * 3600).unwrap_or(BEIJING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_run_is_due_once_the_months_occurrence_has_passed() {
        let schedule = RunSchedule::parse(RunSchedule::DEFAULT).expect("default parses");
        let beijing = FixedOffset::east_opt(8 * 3600).expect("offset");
        let month: YearMonth = "2026-03".parse().expect("month");
        assert_eq!(
            schedule.due_month(at("2026-03-05T00:59:59Z"), beijing),
            None
        );
        assert_eq!(
            schedule.due_month(at("2026-03-05T01:00:00Z"), beijing),
            Some(month)
        );
        assert_eq!(
            schedule.due_month(at("2026-03-31T23:00:00+08:00"), beijing),
            Some(month)
        );
        assert_eq!(
            schedule.due_month(at("2026-03-31T16:30:00Z"), beijing),
            None,
            "already April 1st in Beijing, before April's run"
        );
    }

    #[test]
    fn a_bad_expression_is_refused() {
        assert!(matches!(
            RunSchedule::parse("on the fifth"),
            Err(PaymentError::Schedule { .. })
        ));
    }

    #[test]
    fn the_config_file_overrides_defaults() {
        let config: PaymentsConfig = serde_saphyr::from_str(
            "run_schedule: '0 30 8 10 * *'\nbank_dir: out\nbank_file:\n  columns: [reference, amount]\n",
        )
        .expect("config");
        assert_eq!(config.run_schedule.expression(), "0 30 8 10 * *");
        assert_eq!(config.bank_dir, PathBuf::from("out"));
        assert_eq!(config.bank_file.columns.len(), 2);
        assert_eq!(config.utc_offset_hours, 8);
    }

    #[test]
    fn config_errors_name_the_key_but_never_echo_the_value() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("payments.yaml");
        std::fs::write(&path, "bank_dir: out\nutc_offset_hours: Hunter2-secret\n").expect("write");
        let error = PaymentsConfig::load(&path).expect_err("a word is not an hour");
        let mut chain = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(!chain.contains("Hunter2"), "{chain}");
        assert!(chain.contains(":2:19: `utc_offset_hours`"), "{chain}");
    }
}
