//! When to try an outward delivery again: exponential backoff with jitter up
//! to a limit, then dead-letter.
//!
//! The dispatcher owns the loop and the outbox rows; this module only decides
//! the time of the next attempt, as a pure function of the attempts made, the
//! current time and a jitter source. Tests pass a seeded generator and get the
//! same schedule every run.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde::Deserialize;

/// Where the random part of a delay comes from. Any `rand` generator is one:
/// production passes `rand::rng()`, tests a seeded `StdRng`.
pub trait JitterSource {
    /// A uniformly chosen number of milliseconds in `0..=upper_ms`.
    fn pick_ms(&mut self, upper_ms: u64) -> u64;
}

impl<R: Rng + ?Sized> JitterSource for R {
    fn pick_ms(&mut self, upper_ms: u64) -> u64 {
        self.random_range(0..=upper_ms)
    }
}

/// Why a retry policy is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("max_attempts must be at least 1")]
    NoAttempts,
    #[error("base delay must be longer than zero")]
    ZeroBase,
    #[error("max_delay ({max_delay:?}) is shorter than the base delay ({base:?})")]
    MaxBelowBase { base: Duration, max_delay: Duration },
}

/// Exponential backoff with "equal jitter": the n-th retry waits
/// `cap/2 + random(0..=cap/2)` where `cap = min(max_delay, base * 2^(n-1))`.
///
/// Half of the delay is fixed so retries never bunch up at zero (as plain
/// "full jitter" allows), the other half spreads out the many deliveries
/// that fail together when a mail server or gateway goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRetryPolicy")]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    max_delay: Duration,
}

/// `{max_attempts: 8, base_seconds: 30, max_delay_seconds: 3600}` in config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetryPolicy {
    max_attempts: u32,
    base_seconds: u64,
    max_delay_seconds: u64,
}

impl TryFrom<RawRetryPolicy> for RetryPolicy {
    type Error = RetryPolicyError;

    fn try_from(raw: RawRetryPolicy) -> Result<Self, Self::Error> {
        RetryPolicy::new(
            raw.max_attempts,
            Duration::from_secs(raw.base_seconds),
            Duration::from_secs(raw.max_delay_seconds),
        )
    }
}

impl Default for RetryPolicy {
    /// Eight attempts, 30 s doubling up to an hour: about two hours of
    /// trying before a notification is dead-lettered for a person to handle.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// `max_attempts` counts every attempt, the first included.
    pub fn new(
        max_attempts: u32,
        base: Duration,
        max_delay: Duration,
    ) -> Result<RetryPolicy, RetryPolicyError> {
        if max_attempts == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        if base.is_zero() {
            return Err(RetryPolicyError::ZeroBase);
        }
        if max_delay < base {
            return Err(RetryPolicyError::MaxBelowBase { base, max_delay });
        }
        Ok(RetryPolicy {
            max_attempts,
            base,
            max_delay,
        })
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn base(&self) -> Duration {
        self.base
    }

    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// When to make the next attempt after `attempts` failed ones, or `None`
    /// when the limit is reached and the delivery goes to the dead letters.
    /// No attempt made yet means now.
    pub fn next_attempt(
        &self,
        attempts: u32,
        now: DateTime<Utc>,
        jitter: &mut (impl JitterSource + ?Sized),
    ) -> Option<DateTime<Utc>> {
        if attempts >= self.max_attempts {
            return None;
        }
        if attempts == 0 {
            return Some(now);
        }
        let cap_ms = self.cap(attempts).as_millis();
        // Durations from config fit in u64 milliseconds (585 million years).
        let cap_ms = u64::try_from(cap_ms).unwrap_or(u64::MAX);
        let fixed = cap_ms - cap_ms / 2;
        let delay_ms = fixed.saturating_add(jitter.pick_ms(cap_ms / 2));
        let delay = TimeDelta::try_milliseconds(i64::try_from(delay_ms).unwrap_or(i64::MAX))
            .unwrap_or(TimeDelta::MAX);
        Some(
            now.checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// `min(max_delay, base * 2^(retry-1))` without overflow for any count.
    fn cap(&self, retry: u32) -> Duration {
        let factor = 2u32.checked_pow(retry - 1);
        factor
            .and_then(|f| self.base.checked_mul(f))
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap()
    }

    /// A jitter source that always answers its bound (or zero), to pin the
    /// extremes of the delay range exactly.
    struct Extreme(bool);
    impl JitterSource for Extreme {
        fn pick_ms(&mut self, upper_ms: u64) -> u64 {
            if self.0 { upper_ms } else { 0 }
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(6, Duration::from_secs(10), Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn the_first_attempt_is_now_and_the_limit_dead_letters() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(p.next_attempt(0, at(), &mut rng), Some(at()));
        assert!(p.next_attempt(5, at(), &mut rng).is_some());
        assert_eq!(p.next_attempt(6, at(), &mut rng), None);
        assert_eq!(p.next_attempt(u32::MAX, at(), &mut rng), None);
    }

    #[test]
    fn delays_double_up_to_the_maximum_within_the_jitter_band() {
        let p = policy();
        // attempts → (lowest, highest) delay in seconds: cap/2 ..= cap.
        let table = [
            (1, 5, 10),
            (2, 10, 20),
            (3, 20, 40),
            (4, 30, 60),
            (5, 30, 60),
        ];
        for (attempts, low, high) in table {
            let lo = p.next_attempt(attempts, at(), &mut Extreme(false)).unwrap();
            let hi = p.next_attempt(attempts, at(), &mut Extreme(true)).unwrap();
            assert_eq!((lo - at()).num_seconds(), low, "attempts {attempts}");
            assert_eq!((hi - at()).num_seconds(), high, "attempts {attempts}");
        }
    }

    #[test]
    fn a_seeded_jitter_gives_the_same_schedule_every_run() {
        let p = policy();
        let schedule = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (1..6)
                .map(|n| p.next_attempt(n, at(), &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(schedule(42), schedule(42));
        assert_ne!(schedule(42), schedule(43), "the jitter does vary");
        for (n, when) in (1..6).zip(schedule(42)) {
            let delay = (when - at()).num_milliseconds();
            let cap = p.cap(n).as_millis() as i64;
            assert!(cap / 2 <= delay && delay <= cap, "retry {n}: {delay} ms");
        }
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let p =
            RetryPolicy::new(u32::MAX, Duration::from_secs(1), Duration::from_secs(7200)).unwrap();
        let next = p.next_attempt(200, at(), &mut Extreme(true)).unwrap();
        assert_eq!((next - at()).num_seconds(), 7200);
    }

    #[test]
    fn unusable_policies_are_refused() {
        let s = Duration::from_secs;
        assert_eq!(
            RetryPolicy::new(0, s(1), s(2)),
            Err(RetryPolicyError::NoAttempts)
        );
        assert_eq!(
            RetryPolicy::new(3, s(0), s(2)),
            Err(RetryPolicyError::ZeroBase)
        );
        assert!(matches!(
            RetryPolicy::new(3, s(10), s(2)),
            Err(RetryPolicyError::MaxBelowBase { .. })
        ));
        let from_yaml: Result<RetryPolicy, _> =
            serde_saphyr::from_str("{max_attempts: 0, base_seconds: 1, max_delay_seconds: 2}");
        assert!(from_yaml.is_err());
        let ok: RetryPolicy =
            serde_saphyr::from_str("{max_attempts: 4, base_seconds: 5, max_delay_seconds: 50}")
                .unwrap();
        assert_eq!(ok.max_attempts(), 4);
        assert_eq!(ok.base(), s(5));
    }
}
