//! The one clock: Unix milliseconds, how they are written out, and ages. Every layer may use it
//! (it imports nothing of the service); times are stored and passed around as Unix ms.

use std::time::Duration;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A duration in milliseconds, saturating.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whole seconds from `since_ms` to `now_ms`, never negative (a clock step back reads as 0).
pub fn age_secs(since_ms: i64, now_ms: i64) -> i64 {
    (now_ms - since_ms).max(0) / 1000
}

/// Whole seconds from `since_ms` (if any) to now; 0 without one.
pub fn age_secs_now(since_ms: Option<i64>) -> i64 {
    since_ms.map(|t| age_secs(t, now_ms())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_and_ages() {
        assert_eq!(ms(Duration::from_secs(2)), 2000);
        assert_eq!(ms(Duration::MAX), i64::MAX);
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(age_secs(1_000, 3_999), 2);
        assert_eq!(age_secs(5_000, 1_000), 0, "a clock step back is no age");
        assert_eq!(age_secs_now(None), 0);
    }
}
