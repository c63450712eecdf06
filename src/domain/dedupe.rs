//! Dedupe keys of recorded history: the same message again gives the same key, and the store's
//! unique index on it records it once.

use sha2::{Digest, Sha256};

/// A backend notification's key: the same notification (same merchant, same signed claims) always
/// gives the same key, whatever its signature or header.
pub fn notification_key(merchant_id: &str, token: &str) -> String {
    let claims = token.split('.').nth(1).unwrap_or(token);
    format!("bn:{}", sha256_hex(&format!("{merchant_id}.{claims}")))
}

/// A browser return's key: identical returns of one invoice (a refresh, a double click) share it.
pub fn frontend_return_key(merchant_id: &str, raw: &str) -> String {
    format!("fr:{}", sha256_hex(&format!("{merchant_id}.{raw}")))
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_returns_share_a_key_and_merchants_do_not() {
        assert_eq!(frontend_return_key("JT01", "{}"), frontend_return_key("JT01", "{}"));
        assert_ne!(frontend_return_key("JT01", "{}"), frontend_return_key("JT02", "{}"));
        assert_ne!(frontend_return_key("JT01", "{}"), frontend_return_key("JT01", "{\"a\":1}"));
    }

    #[test]
    fn a_notification_is_keyed_by_its_claims_only() {
        let key = notification_key("JT01", "header.claims.signature");
        assert_eq!(key, notification_key("JT01", "other.claims.redacted"));
        assert_ne!(key, notification_key("JT02", "header.claims.signature"));
        assert!(key.starts_with("bn:") && key.len() == 3 + 64);
    }
}
