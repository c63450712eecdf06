//! Payment Token API (docs/2c2p.md, "Payment Token request"): request fields pgw-relay sends and the answer it reads.

use serde::{Deserialize, Serialize};

/// The signed answer of `POST /payment/4.3/paymentToken`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentTokenResponse {
    #[serde(rename = "webPaymentUrl", default)]
    pub web_payment_url: Option<String>,
    #[serde(rename = "paymentToken", default)]
    pub payment_token: Option<String>,
    #[serde(rename = "respCode")]
    pub resp_code: String,
    #[serde(rename = "respDesc", default)]
    pub resp_desc: String,
}
