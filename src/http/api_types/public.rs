//! Bodies of the public listener: what 2C2P and the customer's browser send.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /2c2p/backend-notification` body, as 2C2P sends it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationRequest {
    /// A compact JWT (HS256, signed with the merchant's secret key) whose claims are the payment
    /// result.
    pub payload: String,
}

/// The answer to a stored (or already stored) notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationAck {
    /// `accepted`: stored now; `duplicate`: stored before, nothing new; `quarantined`: the store
    /// refused it permanently, so it is kept for an operator and the gateway need not retry.
    #[schema(pattern = "^(accepted|duplicate|quarantined)$", example = "accepted")]
    pub status: String,
}

/// `POST /2c2p/frontend-return` form (also accepted as query parameters on `GET`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FrontendReturnForm {
    /// Base64 (standard or URL-safe, padded or not) of 2C2P's JSON `{invoiceNo, channelCode,
    /// respCode, respDesc}`.
    #[serde(rename = "paymentResponse")]
    pub payment_response: String,
}
