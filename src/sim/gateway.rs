//! The gateway's server-to-server APIs: Payment Token, Payment Inquiry (JWT envelopes) and
//! Transaction Status (plain JSON). Paths are matched case-insensitively under `/payment/4.3/` and
//! `/payment/4.1/`. Request errors are answered like 2C2P: HTTP 200 with an unsigned
//! `{"respCode","respDesc"}` body.

use std::collections::HashMap;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::value::RawValue;

use super::config::SimMerchant;
use super::payload::{self, RawObject};
use super::scenario::Spelling;
use super::state::{CreateError, SimState, TokenRequest, FLOW_2000_DESC};
use crate::domain::money::Money;
use crate::protocol::jwt::{self, Envelope, JwtError};
use crate::protocol::payment_result::{InquiryRequest, RequestError};

/// A rejected request: `(respCode, respDesc)`.
type Reject = (&'static str, String);

fn reject(code: &'static str, desc: impl Into<String>) -> Reject {
    (code, desc.into())
}

/// An unsigned 2C2P error body (HTTP 200).
pub(crate) fn unsigned(code: &str, desc: &str) -> HttpResponse {
    HttpResponse::Ok().json(RequestError { resp_code: code.to_string(), resp_desc: desc.to_string() })
}

/// A signed `{"payload": JWT}` answer.
fn signed<T: Serialize>(claims: &T, key: &str) -> HttpResponse {
    HttpResponse::Ok().json(Envelope { payload: jwt::sign(claims, key) })
}

/// What a gateway in trouble answers (`fail_5xx_for_n`).
fn unavailable() -> HttpResponse {
    HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
        .content_type("text/plain; charset=utf-8")
        .body("503 Service Unavailable (pgw-sim scenario fail_5xx_for_n)")
}

/// Routes `/payment/{4.1|4.3}/{paymentToken|paymentInquiry|transactionStatus}` in any letter case;
/// everything else unknown is a JSON 404.
pub(crate) async fn dispatch(req: HttpRequest, body: web::Bytes, state: web::Data<SimState>) -> HttpResponse {
    let path = req.path().trim_end_matches('/').to_ascii_lowercase();
    let mut parts = path.trim_start_matches('/').split('/');
    let (Some("payment"), Some(version), Some(api), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return not_found();
    };
    let Some(version) = Spelling::parse(version) else {
        return not_found();
    };
    if !matches!(api, "paymenttoken" | "paymentinquiry" | "transactionstatus") {
        return not_found();
    }
    if req.method() != Method::POST {
        return HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", "POST"))
            .json(serde_json::json!({"error": "method_not_allowed", "message": "use POST"}));
    }
    match api {
        "paymenttoken" => payment_token(&state, &body, version),
        "paymentinquiry" => {
            let delay = inquiry_delay(&state, &body);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            payment_inquiry(&state, &body, version)
        }
        _ => transaction_status(&state, &body),
    }
}

/// The `inquiry_delay_ms` of the scenario that applies to an inquiry (read before verifying it:
/// the delay only slows the answer, whatever it will be).
fn inquiry_delay(state: &SimState, body: &[u8]) -> std::time::Duration {
    let claims = open_envelope(body)
        .ok()
        .and_then(|token| jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(&token).ok());
    let field = |name: &str| claims.as_ref().and_then(|c| c.get(name)).and_then(|v| v.as_str()).map(str::to_owned);
    let Some(merchant) = field("merchantID") else { return std::time::Duration::ZERO };
    let invoice = field("invoiceNo");
    std::time::Duration::from_millis(state.scenario_for(&merchant, invoice.as_deref()).inquiry_delay_ms)
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"error": "not_found", "message": "no such pgw-sim endpoint"}))
}

/// Opens a `{"payload": JWT}` envelope: 6101 when the body is not a JSON object, 6102 without a
/// payload string.
fn open_envelope(body: &[u8]) -> Result<String, Reject> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| reject("6101", "Invalid request message"))?;
    if !value.is_object() {
        return Err(reject("6101", "Invalid request message"));
    }
    match serde_json::from_value::<Envelope>(value) {
        Ok(env) if !env.payload.trim().is_empty() => Ok(env.payload.trim().to_string()),
        _ => Err(reject("6102", "Required Payload")),
    }
}

fn jwt_reject(e: &JwtError) -> Reject {
    match e {
        JwtError::Malformed | JwtError::InvalidClaims(_) => reject("6103", "Invalid JWT data"),
        JwtError::MissingMerchant => reject("6104", "Required merchantId"),
        JwtError::WrongAlgorithm | JwtError::BadSignature | JwtError::UnsupportedHeader => {
            reject("9042", "Hash value mismatch")
        }
    }
}

/// Peeks the merchant, finds its key and verifies the token.
fn verified<'a, T: serde::de::DeserializeOwned>(
    state: &'a SimState,
    token: &str,
) -> Result<(&'a SimMerchant, T), Reject> {
    let merchant_id = jwt::peek_merchant(token).map_err(|e| jwt_reject(&e))?;
    let merchant = state.merchant(&merchant_id).ok_or_else(|| reject("9007", "Invalid merchant"))?;
    let (claims, _) = jwt::verify::<T>(token, &merchant.secret_key, None).map_err(|e| jwt_reject(&e))?;
    Ok((merchant, claims))
}

// ---------------------------------------------------------------- Payment Token

fn payment_token(state: &web::Data<SimState>, body: &[u8], version: Spelling) -> HttpResponse {
    let token = match open_envelope(body) {
        Ok(t) => t,
        Err((code, desc)) => return fail_or_unsigned(state, None, None, code, &desc),
    };
    let (merchant, claims) = match verified::<HashMap<String, Box<RawValue>>>(state, &token) {
        Ok(v) => v,
        Err((code, desc)) => return fail_or_unsigned(state, None, None, code, &desc),
    };
    let invoice_hint = text(&claims, "invoiceNo").ok().flatten();
    if state.take_fail_5xx(Some(&merchant.id), invoice_hint.as_deref()) {
        return unavailable();
    }
    let new = match parse_token_request(state, merchant, &claims, version) {
        Ok(n) => n,
        Err((code, desc)) => {
            tracing::info!(merchant = %merchant.id, code, "payment token request rejected");
            return unsigned(code, &desc);
        }
    };
    let scenario = state.scenario_for(&merchant.id, Some(&new.invoice_no));
    let entry = match state.create_invoice(new) {
        Ok(e) => e,
        Err(CreateError::ExistingInvoice) => return unsigned("9015", "Existing Invoice Number"),
    };
    tracing::info!(merchant = %entry.merchant_id, invoice = %entry.invoice_no, "payment token issued");
    let mut o = RawObject::new();
    o.str("webPaymentUrl", &entry.web_payment_url)
        .str("paymentToken", &entry.payment_token)
        .str("respCode", "0000")
        .str("respDesc", "Success");
    signed(&o, state.signing_key(merchant, &scenario))
}

/// Errors before the merchant is known still honour a global `fail_5xx_for_n`.
fn fail_or_unsigned(
    state: &SimState,
    merchant: Option<&str>,
    invoice: Option<&str>,
    code: &str,
    desc: &str,
) -> HttpResponse {
    if state.take_fail_5xx(merchant, invoice) {
        return unavailable();
    }
    unsigned(code, desc)
}

/// A text field: a string's content or a number's literal; `Err` for other JSON types.
fn text(claims: &HashMap<String, Box<RawValue>>, key: &str) -> Result<Option<String>, ()> {
    let Some(raw) = claims.get(key) else {
        return Ok(None);
    };
    let json = raw.get().trim();
    match json.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(json).map(Some).map_err(|_| ()),
        Some(b'n') => Ok(None),
        Some(b'-' | b'0'..=b'9') => Ok(Some(json.to_string())),
        _ => Err(()),
    }
}

fn opt_text(claims: &HashMap<String, Box<RawValue>>, key: &'static str, max: usize) -> Result<Option<String>, Reject> {
    match text(claims, key) {
        Err(()) => Err(reject("9004", format!("The {key} value is not valid"))),
        Ok(Some(s)) if s.chars().count() > max => Err(reject("9006", "This field exceeded its authorized length")),
        Ok(Some(s)) if s.trim().is_empty() => Ok(None),
        Ok(v) => Ok(v),
    }
}

fn return_url(claims: &HashMap<String, Box<RawValue>>, key: &'static str) -> Result<Option<String>, Reject> {
    let Some(url) = opt_text(claims, key, 2048)? else {
        return Ok(None);
    };
    match url::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(url.trim().to_string())),
        _ => Err(reject("9004", format!("The {key} value is not valid"))),
    }
}

/// Validates a Payment Token request (docs/2c2p.md, "Payment Token request") in 2C2P's order of concerns.
fn parse_token_request(
    state: &SimState,
    merchant: &SimMerchant,
    claims: &HashMap<String, Box<RawValue>>,
    version: Spelling,
) -> Result<TokenRequest, Reject> {
    let missing = || reject("9005", "Some mandatory fields are missing");
    let invoice_no = opt_text(claims, "invoiceNo", 50)?.ok_or_else(missing)?;
    let description = opt_text(claims, "description", 250)?.ok_or_else(missing)?;
    let amount_text = match claims.get("amount").map(|r| r.get().trim()) {
        None | Some("null") | Some("\"\"") => return Err(missing()),
        Some(_) => text(claims, "amount").map_err(|_| reject("9009", "Amount is invalid"))?.ok_or_else(missing)?,
    };
    let currency = opt_text(claims, "currencyCode", 3)
        .map_err(|_| reject("9010", "Invalid Currency Code"))?
        .ok_or_else(missing)?
        .trim()
        .to_ascii_uppercase();

    if crate::domain::ids::InvoiceNo::parse(&invoice_no).is_err() {
        return Err(reject("9004", "The invoiceNo value is not valid"));
    }
    if !merchant.accepts_currency(&currency) {
        return Err(reject("9010", "Invalid Currency Code"));
    }
    let amount = Money::parse_major(&amount_text, &currency).map_err(|_| reject("9009", "Amount is invalid"))?;
    if amount.minor() <= 0 {
        return Err(reject("9009", "Amount is invalid"));
    }

    let token_key = if claims.contains_key("customerToken") { "customerToken" } else { "cardTokens" };
    let customer_tokens = match claims.get(token_key).map(|r| r.get()) {
        None => Vec::new(),
        Some(raw) => {
            let invalid = || reject("9202", "Invalid CustomerToken");
            let list: Option<Vec<String>> = serde_json::from_str(raw).map_err(|_| invalid())?;
            let mut out: Vec<String> = Vec::new();
            for t in list.unwrap_or_default() {
                let t = t.trim().to_string();
                if t.is_empty() || t.len() > 255 || !state.is_valid_customer_token(merchant, &t) {
                    return Err(invalid());
                }
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            out
        }
    };

    let payment_expiry = opt_text(claims, "paymentExpiry", 19)?;
    if let Some(expiry) = &payment_expiry {
        if chrono::NaiveDateTime::parse_from_str(expiry, "%Y-%m-%d %H:%M:%S").is_err() {
            return Err(reject("9008", "Invalid payment expiry"));
        }
    }
    let tokenize = match claims.get("tokenize").map(|r| r.get().trim()) {
        None | Some("null") | Some("false") | Some("\"false\"") => false,
        Some("true") | Some("\"true\"") => true,
        Some(_) => return Err(reject("9004", "The tokenize value is not valid")),
    };
    let backend_return_url = return_url(claims, "backendReturnUrl")?.or_else(|| merchant.backend_return_url.clone());
    let frontend_return_url = return_url(claims, "frontendReturnUrl")?.or_else(|| merchant.frontend_return_url.clone());
    if frontend_return_url.is_none() {
        return Err(reject("9039", "The merchant frontend URL is missing"));
    }
    let mut user_defined: [Option<String>; 5] = Default::default();
    for (i, key) in
        ["userDefined1", "userDefined2", "userDefined3", "userDefined4", "userDefined5"].into_iter().enumerate()
    {
        user_defined[i] = opt_text(claims, key, 150)?;
    }
    Ok(TokenRequest {
        merchant_id: merchant.id.clone(),
        invoice_no,
        description,
        amount: (&amount).into(),
        customer_tokens,
        backend_return_url,
        frontend_return_url,
        user_defined,
        idempotency_id: opt_text(claims, "idempotencyID", 100)?,
        locale: opt_text(claims, "locale", 10)?,
        tokenize,
        payment_expiry,
        api_version: version,
    })
}

// ---------------------------------------------------------------- Payment Inquiry

fn payment_inquiry(state: &web::Data<SimState>, body: &[u8], version: Spelling) -> HttpResponse {
    let token = match open_envelope(body) {
        Ok(t) => t,
        Err((code, desc)) => return fail_or_unsigned(state, None, None, code, &desc),
    };
    let (merchant, claims) = match verified::<serde_json::Value>(state, &token) {
        Ok(v) => v,
        Err((code, desc)) => return fail_or_unsigned(state, None, None, code, &desc),
    };
    // By invoiceNo (what reconcilers use), else by paymentToken.
    let invoice_no = match serde_json::from_value::<InquiryRequest>(claims.clone()) {
        Ok(req) if !req.invoice_no.trim().is_empty() => Some(req.invoice_no),
        _ => claims
            .get("paymentToken")
            .and_then(|v| v.as_str())
            .and_then(|t| state.entry_by_token(t))
            .filter(|e| e.merchant_id == merchant.id)
            .map(|e| e.invoice_no),
    };
    let Some(invoice_no) = invoice_no else {
        if claims.get("paymentToken").and_then(|v| v.as_str()).is_some() {
            let scenario = state.scenario_for(&merchant.id, None);
            return signed(&payload::not_found_claims(&merchant.id, ""), state.signing_key(merchant, &scenario));
        }
        return fail_or_unsigned(state, Some(&merchant.id), None, "9005", "Some mandatory fields are missing");
    };
    let count = state.count_inquiry(&merchant.id, &invoice_no);
    tracing::info!(merchant = %merchant.id, invoice = %invoice_no, count, "payment inquiry");
    if state.take_fail_5xx(Some(&merchant.id), Some(&invoice_no)) {
        return unavailable();
    }
    let scenario = state.scenario_for(&merchant.id, Some(&invoice_no));
    if let Some(code) = &scenario.unsigned_error {
        return unsigned(code, unsigned_desc(code));
    }
    let key = state.signing_key(merchant, &scenario);
    let entry = state.entry(&merchant.id, &invoice_no);
    if state.take_pending(&merchant.id, &invoice_no) {
        return signed(&payload::pending_claims(&merchant.id, &invoice_no, entry.as_ref()), key);
    }
    match entry {
        Some(entry) => match &entry.result {
            Some(record) => {
                let spelling = scenario.spelling.unwrap_or(version);
                signed(&payload::result_claims(&entry, record, spelling), key)
            }
            None => signed(&payload::not_found_claims(&merchant.id, &invoice_no), key),
        },
        None => signed(&payload::not_found_claims(&merchant.id, &invoice_no), key),
    }
}

fn unsigned_desc(code: &str) -> &'static str {
    match code {
        "9042" => "Hash value mismatch",
        "9007" => "Invalid merchant",
        "6101" => "Invalid request message",
        "6103" => "Invalid JWT data",
        "9005" => "Some mandatory fields are missing",
        "0999" => "System error",
        _ => "Request rejected (pgw-sim scenario)",
    }
}

// ---------------------------------------------------------------- Transaction Status

fn transaction_status(state: &web::Data<SimState>, body: &[u8]) -> HttpResponse {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return fail_or_unsigned(state, None, None, "6101", "Invalid request message"),
    };
    let Some(token) = value.get("paymentToken").and_then(|v| v.as_str()).filter(|t| !t.trim().is_empty()) else {
        return fail_or_unsigned(state, None, None, "9005", "Some mandatory fields are missing");
    };
    let entry = state.entry_by_token(token.trim());
    let (merchant, invoice) = match &entry {
        Some(e) => (Some(e.merchant_id.as_str()), Some(e.invoice_no.as_str())),
        None => (None, None),
    };
    if state.take_fail_5xx(merchant, invoice) {
        return unavailable();
    }
    let mut o = RawObject::new();
    match &entry {
        None => {
            o.null("channelCode").null("invoiceNo").str("respCode", "2002").str("respDesc", "Transaction not found");
        }
        Some(e) => {
            o.str("channelCode", "CC").str("invoiceNo", &e.invoice_no);
            if e.result.is_some() {
                o.str("respCode", "2000").str("respDesc", FLOW_2000_DESC);
            } else {
                o.str("respCode", "2001").str("respDesc", "Transaction in progress");
            }
        }
    }
    HttpResponse::Ok().content_type("application/json").body(o.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::SimConfig;

    fn state() -> SimState {
        let merchant = SimMerchant::new("JT01", "k").with_card("28052010234224845229", "411111XXXXXX1111");
        let mut config = SimConfig::ephemeral(vec![merchant]);
        config.merchants[0].currencies = vec!["SGD".into(), "THB".into()];
        SimState::new(config, "http://127.0.0.1:1".into(), reqwest::Client::new())
    }

    fn claims(json: &str) -> HashMap<String, Box<RawValue>> {
        serde_json::from_str(json).unwrap()
    }

    fn code(state: &SimState, json: &str) -> &'static str {
        let m = state.merchant("JT01").unwrap();
        match parse_token_request(state, m, &claims(json), Spelling::V43) {
            Ok(_) => "0000",
            Err((c, _)) => c,
        }
    }

    #[test]
    fn sim_token_request_validation_codes() {
        let s = state();
        let base = r#""invoiceNo":"A1","description":"d","frontendReturnUrl":"http://x/r""#;
        assert_eq!(code(&s, &format!(r#"{{{base},"amount":1000.00,"currencyCode":"SGD"}}"#)), "0000");
        assert_eq!(code(&s, &format!(r#"{{{base},"amount":"10","currencyCode":"thb"}}"#)), "0000");
        assert_eq!(code(&s, &format!(r#"{{{base},"currencyCode":"SGD"}}"#)), "9005");
        assert_eq!(code(&s, r#"{"invoiceNo":"A1","amount":1,"currencyCode":"SGD"}"#), "9005");
        assert_eq!(code(&s, &format!(r#"{{{base},"amount":"1.005","currencyCode":"SGD"}}"#)), "9009");
        assert_eq!(code(&s, &format!(r#"{{{base},"amount":0,"currencyCode":"SGD"}}"#)), "9009");
        assert_eq!(code(&s, &format!(r#"{{{base},"amount":true,"currencyCode":"SGD"}}"#)), "9009");
        assert_eq!(code(&s, &format!(r#"{{{base},"amount":1,"currencyCode":"USD"}}"#)), "9010");
        assert_eq!(
            code(&s, &format!(r#"{{{base},"amount":1,"currencyCode":"SGD","customerToken":"28052010234224845229"}}"#)),
            "9202"
        );
        assert_eq!(code(&s, &format!(r#"{{{base},"amount":1,"currencyCode":"SGD","customerToken":["abc"]}}"#)), "9202");
        assert_eq!(code(&s, &format!(r#"{{{base},"amount":1,"currencyCode":"SGD","customerToken":[1]}}"#)), "9202");
        assert_eq!(
            code(&s, &format!(r#"{{{base},"amount":1,"currencyCode":"SGD","cardTokens":["1234567890123456"]}}"#)),
            "0000"
        );
        assert_eq!(
            code(&s, &format!(r#"{{{base},"amount":1,"currencyCode":"SGD","paymentExpiry":"tomorrow"}}"#)),
            "9008"
        );
        assert_eq!(
            code(&s, &format!(r#"{{{base},"amount":1,"currencyCode":"SGD","backendReturnUrl":"not a url"}}"#)),
            "9004"
        );
        assert_eq!(code(&s, r#"{"invoiceNo":"A1","description":"d","amount":1,"currencyCode":"SGD"}"#), "9039");
        assert_eq!(
            code(&s, &format!(r#"{{{base},"amount":1,"currencyCode":"SGD","userDefined1":"{}"}}"#, "x".repeat(151))),
            "9006"
        );
        assert_eq!(
            code(
                &s,
                r#"{"invoiceNo":"A 1","description":"d","amount":1,"currencyCode":"SGD","frontendReturnUrl":"http://x/r"}"#
            ),
            "9004"
        );
    }

    #[test]
    fn sim_envelopes_are_checked_before_anything_else() {
        assert_eq!(open_envelope(b"not json").unwrap_err().0, "6101");
        assert_eq!(open_envelope(b"[1]").unwrap_err().0, "6101");
        assert_eq!(open_envelope(b"{}").unwrap_err().0, "6102");
        assert_eq!(open_envelope(br#"{"payload":7}"#).unwrap_err().0, "6102");
        assert_eq!(open_envelope(br#"{"payload":"a.b.c"}"#).unwrap(), "a.b.c");
    }
}
