//! Latency percentiles.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// From durations.
    pub fn of(values: impl IntoIterator<Item = Duration>) -> Latency {
        Latency::of_micros(values.into_iter().map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).collect())
    }

    /// From signed microseconds (a message may reach its consumer before its 200 reaches the
    /// client, so some delays are negative).
    pub fn of_micros(mut micros: Vec<i64>) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let ms = |us: i64| us as f64 / 1000.0;
        let at = |q: f64| {
            let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
            ms(micros[rank - 1])
        };
        let sum: i128 = micros.iter().map(|&v| i128::from(v)).sum();
        Latency {
            samples: micros.len(),
            min_ms: ms(micros[0]),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: ms(micros[micros.len() - 1]),
            mean_ms: sum as f64 / micros.len() as f64 / 1000.0,
        }
    }
}

/// Formats milliseconds with a precision that suits the magnitude.
pub fn fmt_ms(ms: f64) -> String {
    if ms.abs() < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms.abs() >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms.abs() >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// Formats a rate with thousands separators.
pub fn fmt_rate(per_second: f64) -> String {
    let whole = per_second.round() as u64;
    let digits = whole.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latency::of_micros((1..=100).map(|v| v * 1000).collect());
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p90_ms, 90.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        assert_eq!(Latency::of_micros(vec![]).samples, 0);
        assert_eq!(Latency::of_micros(vec![-2000, 3000]).p50_ms, -2.0);
    }

    #[test]
    fn small_times_are_in_microseconds() {
        assert_eq!(fmt_ms(0.0123), "12 µs");
        assert_eq!(fmt_ms(1.5), "1.50 ms");
        assert_eq!(fmt_ms(-2.25), "-2.25 ms");
        assert_eq!(fmt_ms(150.2), "150 ms");
    }

    #[test]
    fn rates_get_separators() {
        assert_eq!(fmt_rate(5012.4), "5,012");
        assert_eq!(fmt_rate(999.0), "999");
        assert_eq!(fmt_rate(1234567.0), "1,234,567");
    }
}
