//! The decoders that read outside input, each as one function from raw bytes that must never
//! panic: the fuzz targets in `fuzz/` (cargo-fuzz) and the property tests below call these.
//! Each also checks the invariants that must hold whatever the input (no card number survives,
//! amounts are exact), panicking when one does not so that the fuzzer reports it.

use chrono::FixedOffset;
use secrecy::SecretString;

use crate::config::Merchant;
use crate::domain::money::Money;
use crate::domain::observation::{Observation, Source};
use crate::domain::redact;
use crate::protocol::jwt;
use crate::protocol::payment_result::PaymentResult;

/// The key the targets sign and verify with.
pub const KEY: &str = "ECC4E54DBA738857B84A7EBC6B5DC7187B8DA68750E88AB53AAA41F548D6F2D9";

fn merchant() -> Merchant {
    Merchant {
        id: crate::domain::ids::MerchantId::parse("JT01").expect("a merchant id"),
        secret_key: SecretString::from(KEY),
        previous_secret_key: None,
        timezone: FixedOffset::east_opt(8 * 3600).expect("valid offset"),
        result_url: None,
        backend_return_url: None,
        frontend_return_url: None,
    }
}

fn assert_clean(text: &str) {
    assert!(!redact::contains_card_number(text), "a card number survived: {text:?}");
    assert!(!text.chars().any(redact::is_removed_control), "a control character survived: {text:?}");
}

/// Every string (keys too) of `v`, decoded.
fn assert_clean_json(v: &serde_json::Value) {
    match v {
        serde_json::Value::String(s) => assert_clean(s),
        serde_json::Value::Array(a) => a.iter().for_each(assert_clean_json),
        serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| {
            assert_clean(k);
            assert_clean_json(v)
        }),
        other => assert_clean(&other.to_string()),
    }
}

/// Everything but the identifiers (`merchantID`, `invoiceNo`, cleaned but never masked).
fn assert_clean_observation(obs: &Observation) {
    let mut rest = serde_json::to_value(obs).expect("an observation serialises");
    for identifier in ["invoice_no", "merchant_id"] {
        rest[identifier] = serde_json::Value::String(String::new());
    }
    assert_clean_json(&rest);
}

/// The backend notification path from the raw body to the normalised observation. The claims
/// are fuzzed behind a valid signature (`data` as the claims of a token signed with [`KEY`]),
/// the envelope as received (`data` as the body).
pub fn notification(data: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Body {
        payload: String,
    }
    let mut tokens = Vec::new();
    if let Ok(body) = serde_json::from_slice::<Body>(data) {
        tokens.push(body.payload.trim().to_string());
    }
    if let Ok(claims) = std::str::from_utf8(data) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signed = jwt::sign(&serde_json::json!({}), KEY);
        let header = signed.split('.').next().unwrap_or_default();
        let unsigned = format!("{header}.{}", b64.encode(claims));
        tokens.push(resign(&unsigned));
    }
    for token in tokens {
        let _ = jwt::peek_merchant(&token);
        if let Ok(verified) = jwt::verify_redacted::<PaymentResult>(&token, KEY, None) {
            let audit_claims = verified.audit.split('.').nth(1).map(str::to_string).unwrap_or_default();
            if verified.audit.ends_with(".redacted") {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(audit_claims).unwrap_or_default();
                if let Ok(serde_json::Value::Object(mut claims)) = serde_json::from_slice(&decoded) {
                    claims.remove("merchantID");
                    claims.remove("invoiceNo");
                    assert_clean_json(&serde_json::Value::Object(claims));
                }
            }
            let m = merchant();
            if let Ok(obs) =
                Observation::from_payment_result(&verified.claims, Source::BackendNotification, &m.id, m.timezone, 0)
            {
                assert_clean_observation(&obs);
                if let Some(money) = &obs.amount {
                    amount_round_trip(money);
                }
            }
        }
    }
}

/// HS256 over `header.claims`, appended.
fn resign(unsigned: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    // HMAC-SHA256 by hand (RFC 2104) to sign arbitrary claims bytes.
    let key = KEY.as_bytes();
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = sha2::Sha256::new().chain_update(pad(0x36)).chain_update(unsigned.as_bytes()).finalize();
    let mac = sha2::Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    format!("{unsigned}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac))
}

/// The browser's `paymentResponse` value (after form decoding).
pub fn frontend_return(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(decoded) = crate::protocol::frontend_return::decode(&text) {
        // `invoiceNo` is an identifier: cleaned, never masked.
        assert!(!decoded.invoice_no.chars().any(redact::is_removed_control));
        for field in [&decoded.channel_code, &decoded.resp_code, &decoded.resp_desc].into_iter().flatten() {
            assert_clean(field);
        }
    }
}

/// `Money::parse_major`: `data` is `amount` and a currency after the first `|`.
pub fn amount(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (amount, currency) = text.split_once('|').unwrap_or((&text, "SGD"));
    if let Ok(money) = Money::parse_major(amount, currency) {
        amount_round_trip(&money);
        let exact = amount.trim();
        assert!(exact.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "accepted {exact:?}");
    }
}

fn amount_round_trip(money: &Money) {
    let again = Money::parse_major(&money.major_string(), money.currency().code()).expect("a normalised amount parses");
    assert_eq!(&again, money, "a normalised amount round-trips");
}

/// The inquiry answer path: `data` as the HTTP body, and as the claims of a signed answer.
pub fn inquiry_answer(data: &[u8]) {
    let m = merchant();
    let mut bodies = vec![data.to_vec()];
    if let Ok(claims) = std::str::from_utf8(data) {
        use base64::Engine;
        let signed = jwt::sign(&serde_json::json!({}), KEY);
        let header = signed.split('.').next().unwrap_or_default();
        let token = resign(&format!("{header}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)));
        bodies.push(serde_json::json!({ "payload": token }).to_string().into_bytes());
    }
    for body in bodies {
        match crate::gateway::read_answer::<PaymentResult>(&body, &m) {
            Ok((result, _audit)) => {
                if let Ok(obs) = Observation::from_payment_result(&result, Source::Inquiry, &m.id, m.timezone, 0) {
                    assert_clean_observation(&obs);
                }
            }
            Err(crate::gateway::GatewayError::Rejected { code, desc }) => {
                assert_clean(&code);
                assert_clean(&desc);
            }
            Err(_) => {}
        }
    }
}

/// Configuration loading: `data` as a TOML file on top of the defaults.
pub fn configuration(data: &[u8]) {
    let _ = crate::config::load_str(&String::from_utf8_lossy(data));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_signed_claims_path_reaches_normalisation() {
        let claims = br#"{"merchantID":"JT01","invoiceNo":"A1","respCode":"0000","amount":"1.00","currencyCode":"SGD","respDesc":"4111 1111 1111 1111"}"#;
        notification(claims);
        inquiry_answer(claims);
        let unsigned = format!("x.{}", "e30");
        let token = resign(&unsigned);
        assert!(jwt::verify::<serde_json::Value>(&token, KEY, None).is_err(), "garbage header");
        let good = jwt::sign(&serde_json::json!({"a": 1}), KEY);
        let (header_claims, _) = good.rsplit_once('.').unwrap();
        assert_eq!(resign(header_claims), good, "hand-made HMAC matches the JWT library");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn no_decoder_panics_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            notification(&data);
            frontend_return(&data);
            amount(&data);
            inquiry_answer(&data);
        }

        #[test]
        fn no_decoder_panics_on_json_like_text(data in r#"\{("[a-zA-Z]{1,12}":("[ -~０-９]{0,24}"|-?[0-9.eE]{1,24}|\[[0-9]\]|null|true),?){0,6}\}"#) {
            notification(data.as_bytes());
            inquiry_answer(data.as_bytes());
            let b64 = { use base64::Engine; base64::engine::general_purpose::STANDARD.encode(&data) };
            frontend_return(b64.as_bytes());
        }

        #[test]
        fn configuration_loading_never_panics(data in r#"(\[[a-z_]{1,16}\]\n|[a-z_]{1,24} = ("[ -~]{0,16}"|[0-9]{1,6}|true)\n){0,8}"#) {
            configuration(data.as_bytes());
        }
    }
}
