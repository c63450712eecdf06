//! HS256 JWT signing and verification as 2C2P does it: the key is the merchant secret's ASCII
//! bytes, tokens carry no `exp`/`iat`, and the signature covers the compact string as received.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a compact JWS, or its header/claims are not JSON.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The header names an algorithm other than HS256 (including `none`).
    #[error("the token is not signed with HS256")]
    WrongAlgorithm,
    /// The claims carry no `merchantID`.
    #[error("the token carries no merchantID")]
    MissingMerchant,
    /// No configured key verifies the signature.
    #[error("the token signature does not verify")]
    BadSignature,
    /// The signature verifies but the claims do not have the expected shape.
    #[error("the token claims are not valid: {0}")]
    InvalidClaims(String),
    /// The header carries a parameter that would change how the signature is computed or which
    /// key checks it (`crit`, `b64`, `jwk`, …).
    #[error("the token header carries unsupported parameters")]
    UnsupportedHeader,
}

/// Header parameters an HS256 token may carry; any other one (`crit`, `b64`, `jku`, `jwk`,
/// `x5u`, `zip`, …) changes how the token would have to be verified, so it is refused.
const ALLOWED_HEADER_PARAMS: [&str; 4] = ["alg", "typ", "kid", "cty"];

/// Checks the header pins HS256 and carries nothing else that matters to verification.
fn check_header(token: &str) -> Result<(), JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| classify_header_error(token))?;
    if header.alg != Algorithm::HS256 {
        return Err(JwtError::WrongAlgorithm);
    }
    use base64::Engine;
    let first = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)?;
    let params: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
    if params.keys().any(|k| !ALLOWED_HEADER_PARAMS.contains(&k.as_str())) {
        return Err(JwtError::UnsupportedHeader);
    }
    Ok(())
}

/// Signs `claims` with HS256 under `secret` (the secret string's bytes, not hex-decoded).
pub fn sign<T: Serialize>(claims: &T, secret: &str) -> String {
    let header = Header::new(Algorithm::HS256);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("HS256 signing of serialisable claims cannot fail")
}

#[derive(Deserialize)]
struct MerchantPeek {
    #[serde(rename = "merchantID", default)]
    merchant_id: Option<serde_json::Value>,
}

/// Reads `merchantID` from an unverified token so the right key can be chosen. Checks that the
/// header pins HS256 first; the result must still be verified with [`verify`].
pub fn peek_merchant(token: &str) -> Result<String, JwtError> {
    check_header(token)?;
    let peek: MerchantPeek = jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| JwtError::Malformed)?;
    match peek.merchant_id {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(JwtError::MissingMerchant),
    }
}

/// A header with an algorithm the crate does not know (such as `none`) fails to parse; tell that
/// apart from a token that is not a JWT at all.
fn classify_header_error(token: &str) -> JwtError {
    use base64::Engine;
    let Some(first) = token.split('.').next() else {
        return JwtError::Malformed;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(first.trim_end_matches('=')) else {
        return JwtError::Malformed;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) if v.get("alg").is_some() => JwtError::WrongAlgorithm,
        _ => JwtError::Malformed,
    }
}

/// Which of a merchant's keys verified a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    Current,
    Previous,
}

/// Verifies `token` with HS256 under `current` (then `previous`, during key rotation) and
/// deserialises its claims.
pub fn verify<T: DeserializeOwned>(
    token: &str,
    current: &str,
    previous: Option<&str>,
) -> Result<(T, KeyUsed), JwtError> {
    check_header(token)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let keys = [(Some(current), KeyUsed::Current), (previous, KeyUsed::Previous)];
    let mut last = JwtError::BadSignature;
    for (key, used) in keys {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            continue;
        };
        match jsonwebtoken::decode::<T>(token, &DecodingKey::from_secret(key.as_bytes()), &validation) {
            Ok(data) => return Ok((data.claims, used)),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                last = match e.kind() {
                    ErrorKind::InvalidSignature => JwtError::BadSignature,
                    ErrorKind::InvalidAlgorithm => return Err(JwtError::WrongAlgorithm),
                    ErrorKind::Json(err) => return Err(JwtError::InvalidClaims(err.to_string())),
                    ErrorKind::Base64(_) | ErrorKind::InvalidToken | ErrorKind::Utf8(_) => {
                        return Err(JwtError::Malformed)
                    }
                    _ => JwtError::BadSignature,
                };
            }
        }
    }
    Err(last)
}

/// The `{"payload": "<JWT>"}` envelope used in both directions of 2C2P's server-to-server calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub payload: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Vector {
        secret_key: String,
        jwt: String,
        decoded_payload: serde_json::Value,
        verifies: bool,
    }

    fn vectors() -> Vec<Vector> {
        let text = include_str!("../../tests/data/2c2p-vectors.json");
        serde_json::from_str(text).expect("vectors parse")
    }

    #[test]
    fn every_vector_verifies_with_its_key_and_fails_with_the_others() {
        let all = vectors();
        assert!(all.len() >= 6);
        for (i, v) in all.iter().enumerate() {
            assert!(v.verifies, "vector {i} is marked verifies=true");
            let (claims, used) = verify::<serde_json::Value>(&v.jwt, &v.secret_key, None)
                .unwrap_or_else(|e| panic!("vector {i} must verify: {e}"));
            assert_eq!(used, KeyUsed::Current);
            assert_eq!(claims, v.decoded_payload, "vector {i} claims");
            for (j, other) in all.iter().enumerate() {
                if other.secret_key != v.secret_key {
                    assert_eq!(
                        verify::<serde_json::Value>(&v.jwt, &other.secret_key, None).unwrap_err(),
                        JwtError::BadSignature,
                        "vector {i} with key of vector {j}"
                    );
                }
            }
            assert_eq!(
                verify::<serde_json::Value>(&v.jwt, &format!("{}x", v.secret_key), None).unwrap_err(),
                JwtError::BadSignature
            );
        }
    }

    #[test]
    fn previous_key_is_accepted_during_rotation() {
        let v = &vectors()[5];
        let (_, used) = verify::<serde_json::Value>(&v.jwt, "new-key-not-yet-used", Some(&v.secret_key)).unwrap();
        assert_eq!(used, KeyUsed::Previous);
    }

    #[test]
    fn peek_reads_the_merchant_of_a_real_notification() {
        let v = &vectors()[5];
        assert_eq!(peek_merchant(&v.jwt).unwrap(), "702702000001875");
    }

    #[test]
    fn none_and_other_algorithms_are_rejected() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = b64(r#"{"merchantID":"JT01","invoiceNo":"1","respCode":"0000"}"#);
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), claims);
        assert_eq!(peek_merchant(&none).unwrap_err(), JwtError::WrongAlgorithm);
        assert_eq!(verify::<serde_json::Value>(&none, "k", None).unwrap_err(), JwtError::WrongAlgorithm);
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &serde_json::json!({"merchantID": "JT01"}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert_eq!(verify::<serde_json::Value>(&hs512, "k", None).unwrap_err(), JwtError::WrongAlgorithm);
        assert_eq!(peek_merchant(&hs512).unwrap_err(), JwtError::WrongAlgorithm);
    }

    #[test]
    fn header_parameters_that_change_verification_are_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = sign(&serde_json::json!({"merchantID": "JT01", "invoiceNo": "1"}), "key");
        let rest = token.split_once('.').unwrap().1;
        for header in [
            r#"{"alg":"HS256","typ":"JWT","crit":["b64"],"b64":false}"#,
            r#"{"alg":"HS256","b64":false}"#,
            r#"{"alg":"HS256","jwk":{"kty":"oct","k":"a2V5"}}"#,
        ] {
            let forged = format!("{}.{rest}", b64.encode(header));
            assert_eq!(peek_merchant(&forged).unwrap_err(), JwtError::UnsupportedHeader, "{header}");
            assert_eq!(verify::<serde_json::Value>(&forged, "key", None).unwrap_err(), JwtError::UnsupportedHeader);
        }
        let with_kid = format!("{}.{rest}", b64.encode(r#"{"alg":"HS256","typ":"JWT","kid":"1"}"#));
        assert_eq!(peek_merchant(&with_kid).unwrap(), "JT01");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for token in ["", ".", "a.b", "a.b.c", "!!!.???.###", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig"] {
            assert!(peek_merchant(token).is_err(), "{token}");
            assert!(verify::<serde_json::Value>(token, "k", None).is_err(), "{token}");
        }
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let token = sign(&serde_json::json!({"merchantID": "JT01", "amount": 10}), "secret");
        let (claims, _) = verify::<serde_json::Value>(&token, "secret", None).unwrap();
        assert_eq!(claims["amount"], 10);
        assert_eq!(peek_merchant(&token).unwrap(), "JT01");
    }
}
