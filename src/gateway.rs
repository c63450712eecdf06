//! The 2C2P client: Payment Token and Payment Inquiry over `reqwest`, JWT envelopes both ways.
//! A signed answer is verified before it is believed; an unsigned `{respCode, respDesc}` body is a
//! rejection of the request, never a payment result.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;

use crate::config::Merchant;
use crate::domain::redact;
use crate::metrics::Metrics;
use crate::protocol::jwt::{self, Envelope};
use crate::protocol::payment_result::{InquiryRequest, PaymentResult};
use crate::protocol::payment_token::PaymentTokenResponse;

/// Why a gateway call gave no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("the gateway did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the gateway could not be reached: {0}")]
    Transport(String),
    #[error("the gateway answered HTTP {0}")]
    HttpStatus(u16),
    /// The gateway rejected the request with an unsigned `{respCode, respDesc}`.
    #[error("the gateway rejected the request: {code} {desc}")]
    Rejected { code: String, desc: String },
    #[error("the gateway's answer is not signed with the merchant key")]
    BadSignature,
    #[error("the gateway's answer is not understood: {0}")]
    Malformed(String),
}

impl GatewayError {
    /// The `kind` label of `pgw_relay_gateway_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::Timeout(_) => "timeout",
            GatewayError::Transport(_) => "transport",
            GatewayError::HttpStatus(_) => "http_status",
            GatewayError::Rejected { .. } => "unsigned_error",
            GatewayError::BadSignature => "bad_signature",
            GatewayError::Malformed(_) => "malformed",
        }
    }

    /// Whether the request may not have reached the gateway's ledger (safe to retry only when
    /// the call is idempotent).
    pub fn is_transient(&self) -> bool {
        matches!(self, GatewayError::Timeout(_) | GatewayError::Transport(_) | GatewayError::HttpStatus(500..=599))
    }
}

/// A verified inquiry answer with its audit copy.
#[derive(Debug, Clone)]
pub struct InquiryAnswer {
    pub result: PaymentResult,
    /// The signed JWT as received, or its redacted copy (`jwt::Verified::audit`).
    pub token: String,
}

/// The gateway client.
#[derive(Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    metrics: Metrics,
}

impl GatewayClient {
    /// A client for `base_url` (e.g. `https://sandbox-pgw.2c2p.com`) with a per-call timeout.
    pub fn new(base_url: &str, timeout: Duration, metrics: Metrics) -> Result<Self, GatewayError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("pgw-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GatewayError::Transport(e.to_string()))?;
        Ok(GatewayClient { http, base_url: base_url.trim_end_matches('/').to_string(), timeout, metrics })
    }

    /// `POST /payment/4.3/paymentToken` with `request` (the 2C2P request fields). Answers the
    /// verified response whatever its `respCode`; callers decide what a non-`0000` means.
    pub async fn payment_token(
        &self,
        merchant: &Merchant,
        request: &Value,
    ) -> Result<PaymentTokenResponse, GatewayError> {
        let (claims, _) = self
            .call::<_, PaymentTokenResponse>("payment_token", "/payment/4.3/paymentToken", merchant, request)
            .await?;
        Ok(claims)
    }

    /// `POST /payment/4.3/paymentInquiry` for one invoice.
    pub async fn inquiry(&self, merchant: &Merchant, invoice_no: &str) -> Result<InquiryAnswer, GatewayError> {
        let request = InquiryRequest {
            merchant_id: merchant.id.to_string(),
            invoice_no: invoice_no.to_string(),
            locale: Some("en".into()),
        };
        let started = Instant::now();
        let answer =
            self.call::<_, PaymentResult>("payment_inquiry", "/payment/4.3/paymentInquiry", merchant, &request).await;
        self.metrics.inquiry_duration.observe(started.elapsed().as_secs_f64());
        let (result, token) = answer?;
        Ok(InquiryAnswer { result, token })
    }

    async fn call<Req: Serialize, Res: serde::de::DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        merchant: &Merchant,
        request: &Req,
    ) -> Result<(Res, String), GatewayError> {
        let result = self.call_inner(path, merchant, request).await;
        if let Err(e) = &result {
            self.metrics.gateway_errors.with_label_values(&[api, e.kind()]).inc();
            tracing::warn!(api, merchant = %merchant.id, error = %e, "gateway call failed");
        }
        result
    }

    async fn call_inner<Req: Serialize, Res: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        merchant: &Merchant,
        request: &Req,
    ) -> Result<(Res, String), GatewayError> {
        let key = merchant.secret_key.expose_secret();
        let envelope = Envelope { payload: jwt::sign(request, key) };
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .json(&envelope)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(GatewayError::HttpStatus(status.as_u16()));
        }
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                GatewayError::Timeout(self.timeout)
            } else {
                GatewayError::Transport(e.without_url().to_string())
            }
        })?;
        read_answer(&body, merchant)
    }

    fn transport_error(&self, e: reqwest::Error) -> GatewayError {
        if e.is_timeout() {
            GatewayError::Timeout(self.timeout)
        } else {
            // reqwest errors carry the URL, never the body: safe to log.
            GatewayError::Transport(e.without_url().to_string())
        }
    }
}

/// Reads a gateway answer body for `merchant`: a signed `{"payload": "<JWT>"}` is verified and its
/// claims read after redaction (answered with the audit copy of the token); an unsigned
/// `{respCode, respDesc}` is a rejection of the request. Never panics, whatever the body.
pub fn read_answer<Res: serde::de::DeserializeOwned>(
    body: &[u8],
    merchant: &Merchant,
) -> Result<(Res, String), GatewayError> {
    let body: Value =
        serde_json::from_slice(body).map_err(|_| GatewayError::Malformed("the body is not JSON".into()))?;
    match body.get("payload").and_then(Value::as_str) {
        Some(token) => {
            let key = merchant.secret_key.expose_secret();
            let previous = merchant.previous_secret_key.as_ref().map(|k| k.expose_secret());
            let verified = jwt::verify_redacted::<Res>(token, key, previous).map_err(|e| match e {
                jwt::JwtError::BadSignature | jwt::JwtError::WrongAlgorithm | jwt::JwtError::UnsupportedHeader => {
                    GatewayError::BadSignature
                }
                other => GatewayError::Malformed(other.to_string()),
            })?;
            Ok((verified.claims, verified.audit))
        }
        None => match body.get("respCode") {
            Some(code) => Err(GatewayError::Rejected {
                code: redact::text(&code.as_str().map(str::to_string).unwrap_or_else(|| code.to_string())).into_owned(),
                desc: redact::text(body.get("respDesc").and_then(Value::as_str).unwrap_or_default()).into_owned(),
            }),
            None => Err(GatewayError::Malformed("neither payload nor respCode in the answer".into())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::payment_token::PaymentTokenResponse;

    fn merchant() -> Merchant {
        Merchant {
            id: crate::domain::ids::MerchantId::parse("JT01").unwrap(),
            secret_key: "a-merchant-key".into(),
            previous_secret_key: None,
            timezone: chrono::FixedOffset::east_opt(0).unwrap(),
            result_url: None,
            backend_return_url: None,
            frontend_return_url: None,
        }
    }

    #[test]
    fn payment_token_and_error_answers_are_read_redacted() {
        let claims = serde_json::json!({"respCode": "4005", "respDesc": "Declined: card 4111 1111 1111 1111\u{0}"});
        let body = serde_json::json!({"payload": jwt::sign(&claims, "a-merchant-key")}).to_string();
        let (answer, audit) = read_answer::<PaymentTokenResponse>(body.as_bytes(), &merchant()).unwrap();
        assert_eq!(answer.resp_desc, "Declined: card 411111XXXXXX1111");
        assert!(audit.ends_with(".redacted"), "{audit}");
        let unsigned = br#"{"respCode":"9015","respDesc":"4111-1111-1111-1111 already used"}"#;
        match read_answer::<PaymentTokenResponse>(unsigned, &merchant()) {
            Err(GatewayError::Rejected { desc, .. }) => assert_eq!(desc, "411111XXXXXX1111 already used"),
            other => panic!("{other:?}"),
        }
    }
}
