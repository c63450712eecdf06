//! When to inquire again and when to give up: pure functions of the invoice's times, the answer's
//! class and the `[reconcile]` settings.

use std::time::Duration;

use crate::clock::ms;
use crate::config::ReconcileSettings;
use crate::protocol::resp_code::CodeClass;

/// The delay before attempt `attempt + 1`, after `attempt` attempts (1-based): `initial`, doubling,
/// capped at `max`, spread by up to ±10% (deterministic per invoice, so replicas agree and a
/// gateway outage does not end in a synchronised storm).
pub fn backoff(attempt: u32, initial: Duration, max: Duration, spread_key: &str) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exp).min(max);
    let hash = spread_key
        .bytes()
        .fold(attempt as u64 ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let permille = (hash % 201) as i64 - 100; // -100..=100
    let millis = base.as_millis() as i64;
    Duration::from_millis((millis + millis * permille / 1000).max(1) as u64)
}

/// What to do after an inquiry (by default: nothing more).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextStep {
    /// When to inquire again if the invoice is still pending.
    pub next_at: Option<i64>,
    /// Expire the invoice (still pending, window over, gateway reports no completed payment).
    pub expire: bool,
}

/// Facts about the invoice the policy needs (Unix ms).
#[derive(Debug, Clone, Copy)]
pub struct InvoiceTimes {
    pub created_at: i64,
    /// End of the payment window.
    pub expires_at: Option<i64>,
    /// Inquiries made before this one.
    pub attempts: u32,
}

/// Decides the next step after an inquiry whose answer had `class` (`None`: no usable answer).
pub fn next_step(
    class: Option<CodeClass>,
    times: InvoiceTimes,
    now: i64,
    settings: &ReconcileSettings,
    key: &str,
) -> NextStep {
    let attempt = times.attempts + 1;
    let retry = NextStep {
        next_at: Some(now + ms(backoff(attempt, settings.initial_backoff, settings.max_backoff, key))),
        expire: false,
    };
    let window_over = now >= times.expires_at.unwrap_or(times.created_at + ms(settings.default_payment_window));
    let gave_up = now >= times.created_at + ms(settings.give_up_after);
    match class {
        Some(
            CodeClass::Succeeded
            | CodeClass::Failed
            | CodeClass::Cancelled
            | CodeClass::PostPayment
            | CodeClass::NeedsReview,
        ) => NextStep { next_at: None, expire: false },
        Some(CodeClass::NotFound) if window_over => NextStep { next_at: None, expire: true },
        Some(CodeClass::Pending) if window_over && gave_up => NextStep { next_at: None, expire: true },
        _ => retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ReconcileSettings {
        crate::config::load(&crate::config::Sources::default()).unwrap().settings.reconcile
    }

    #[test]
    fn backoff_doubles_from_initial_to_max_with_a_small_spread() {
        let (i, m) = (Duration::from_secs(60), Duration::from_secs(3600));
        let within = |d: Duration, want: u64| {
            let lo = want * 900;
            let hi = want * 1100;
            let got = d.as_millis() as u64;
            assert!(got >= lo && got <= hi, "{got} not within 10% of {want}s");
        };
        within(backoff(1, i, m, "a"), 60);
        within(backoff(2, i, m, "a"), 120);
        within(backoff(3, i, m, "a"), 240);
        within(backoff(7, i, m, "a"), 3600);
        within(backoff(40, i, m, "a"), 3600);
        assert_ne!(backoff(3, i, m, "invoice-1"), backoff(3, i, m, "invoice-2"), "spread differs per invoice");
    }

    #[test]
    fn final_answers_stop_and_not_found_after_the_window_expires() {
        let s = settings();
        let times = InvoiceTimes { created_at: 0, expires_at: Some(1_000), attempts: 0 };
        assert_eq!(
            next_step(Some(CodeClass::Succeeded), times, 10, &s, "k"),
            NextStep { next_at: None, expire: false }
        );
        let before = next_step(Some(CodeClass::NotFound), times, 999, &s, "k");
        assert!(!before.expire && before.next_at.is_some());
        assert_eq!(
            next_step(Some(CodeClass::NotFound), times, 1_000, &s, "k"),
            NextStep { next_at: None, expire: true }
        );
    }

    #[test]
    fn pending_expires_only_after_give_up_and_errors_never_expire() {
        let s = settings();
        let times = InvoiceTimes { created_at: 0, expires_at: Some(1_000), attempts: 3 };
        let late = ms(s.give_up_after);
        assert!(!next_step(Some(CodeClass::Pending), times, late - 1, &s, "k").expire);
        assert!(next_step(Some(CodeClass::Pending), times, late, &s, "k").expire);
        for class in [None, Some(CodeClass::Indeterminate), Some(CodeClass::RequestError)] {
            let step = next_step(class, times, late * 2, &s, "k");
            assert!(!step.expire && step.next_at.is_some(), "{class:?}");
        }
    }
}
