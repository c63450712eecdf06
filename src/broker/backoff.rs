//! How long the relay waits before trying again: after a failed connection, a batch that
//! published nothing, a store failure, or for one event that was not confirmed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use crate::config::BrokerSettings;

/// The wait before retry number `n + 1` (0-based): from `reconnect_min_backoff`, doubling, capped
/// at `reconnect_max_backoff`, with jitter (50–100 %).
pub fn retry_delay(settings: &BrokerSettings, n: u32) -> Duration {
    jitter(backoff(settings.reconnect_min_backoff, settings.reconnect_max_backoff, n))
}

/// `min * 2^n`, capped at `max`.
pub(crate) fn backoff(min: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(30)).unwrap_or(u32::MAX);
    min.saturating_mul(factor).min(max)
}

/// A random duration between half of `d` and `d`.
pub(crate) fn jitter(d: Duration) -> Duration {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let r = (h.finish() % 1_000) as u32; // 0..1000
    d / 2 + (d / 2) * r / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let min = Duration::from_millis(200);
        let max = Duration::from_secs(30);
        assert_eq!(backoff(min, max, 0), min);
        assert_eq!(backoff(min, max, 3), Duration::from_millis(1600));
        assert_eq!(backoff(min, max, 20), max);
        assert_eq!(backoff(min, max, 200), max);
    }

    #[test]
    fn jitter_stays_between_half_and_full() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(1));
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
        }
    }
}
