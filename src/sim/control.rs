//! Scenario controls for tests: the HTTP control API under `/control/…` and the in-process
//! [`SimControl`] handle, which do the same things.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::ledger::{LedgerEntry, Outcome};
use super::page::{self, PayReport};
use super::scenario::{Scenario, Scope, Spelling};
use super::state::{CardChoice, SimState};

/// In-process control of a running simulator (see [`super::SimServer::control`]).
#[derive(Clone)]
pub struct SimControl {
    pub(crate) state: Arc<SimState>,
}

/// Why an outcome could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    #[error("no such invoice")]
    UnknownInvoice,
    #[error("a final outcome is already recorded (9041 payment token already used)")]
    AlreadyFinal,
    #[error("the card is not one of the invoice's customer tokens")]
    CardNotOffered,
}

impl SimControl {
    /// Sets (replaces) the scenario of a scope; `Scenario::default()` clears it.
    pub fn set_scenario(&self, scope: Scope, scenario: Scenario) {
        self.state.set_scenario(scope, scenario);
    }

    /// Every scenario set, by scope.
    pub fn scenarios(&self) -> Vec<(Scope, Scenario)> {
        self.state.scenarios()
    }

    /// A copy of one ledger entry.
    pub fn ledger(&self, merchant_id: &str, invoice_no: &str) -> Option<LedgerEntry> {
        self.state.entry(merchant_id, invoice_no)
    }

    /// Copies of every ledger entry, oldest first.
    pub fn ledger_all(&self) -> Vec<LedgerEntry> {
        self.state.entries()
    }

    /// How many Payment Inquiries named this invoice (503s and unsigned errors included).
    pub fn inquiry_count(&self, merchant_id: &str, invoice_no: &str) -> u64 {
        self.state.inquiry_count(merchant_id, invoice_no)
    }

    /// Sends the notifications of an invoice held by the `reorder` scenario now.
    pub fn release(&self, merchant_id: &str, invoice_no: &str) -> usize {
        self.state.release(merchant_id, invoice_no)
    }

    /// Forgets every invoice, scenario, count and tokenized card.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Settles an invoice without the page, as `POST /control/pay` does: records the outcome
    /// (first registered card, else a new card), starts the notification and waits for its first
    /// attempt when it is sent right away. Call it from a Tokio runtime.
    pub async fn pay(&self, merchant_id: &str, invoice_no: &str, outcome: Outcome) -> Result<PayReport, PayError> {
        page::settle(self.state.clone(), merchant_id, invoice_no, outcome, CardChoice::Default, None, true).await
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({"error": code, "message": message.into()}))
}

/// Parses a JSON body (an empty body is `{}`); the error is the 400 answer's message.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let text = if body.iter().all(|b| b.is_ascii_whitespace()) { &b"{}"[..] } else { body };
    serde_json::from_slice(text).map_err(|e| e.to_string())
}

fn bad_json(message: String) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, "bad_json", message)
}

/// `GET /control/scenario`.
pub(crate) async fn list_scenarios(state: web::Data<SimState>) -> HttpResponse {
    let all: Vec<serde_json::Value> = state
        .scenarios()
        .into_iter()
        .map(|(scope, scenario)| serde_json::json!({"scope": scope, "scenario": scenario}))
        .collect();
    HttpResponse::Ok().json(all)
}

/// `POST /control/scenario`: `{"merchantID"?, "invoiceNo"?, <scenario fields>}`.
pub(crate) async fn set_scenario(body: web::Bytes, state: web::Data<SimState>) -> HttpResponse {
    let mut map: serde_json::Map<String, serde_json::Value> = match parse_json(&body) {
        Ok(m) => m,
        Err(message) => return bad_json(message),
    };
    let mut take = |k: &str| -> Result<Option<String>, String> {
        match map.remove(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(_) => Err(format!("{k} must be a non-empty string")),
        }
    };
    let (merchant_id, invoice_no) = match (take("merchantID"), take("invoiceNo")) {
        (Ok(m), Ok(i)) => (m, i),
        (Err(m), _) | (_, Err(m)) => return error(StatusCode::BAD_REQUEST, "bad_scope", m),
    };
    if invoice_no.is_some() && merchant_id.is_none() {
        return error(StatusCode::BAD_REQUEST, "bad_scope", "invoiceNo needs merchantID");
    }
    let scenario: Scenario = match serde_json::from_value(serde_json::Value::Object(map)) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_scenario", e.to_string()),
    };
    let scope = Scope { merchant_id, invoice_no };
    state.set_scenario(scope.clone(), scenario.clone());
    HttpResponse::Ok().json(serde_json::json!({"scope": scope, "scenario": scenario}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayBody {
    #[serde(rename = "merchantID")]
    merchant_id: String,
    #[serde(rename = "invoiceNo")]
    invoice_no: String,
    outcome: String,
    #[serde(default)]
    card: Option<String>,
    #[serde(default)]
    spelling: Option<String>,
}

/// `POST /control/pay`: `{"merchantID", "invoiceNo", "outcome", "card"?, "spelling"?}`.
pub(crate) async fn pay(body: web::Bytes, state: web::Data<SimState>) -> HttpResponse {
    let req: PayBody = match parse_json(&body) {
        Ok(r) => r,
        Err(message) => return bad_json(message),
    };
    let Some(outcome) = Outcome::parse(&req.outcome) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_outcome",
            "outcome must be one of success, decline, cancel, pending, 3ds_fail",
        );
    };
    let spelling = match req.spelling.as_deref() {
        None => None,
        Some(s) => match Spelling::parse(s) {
            Some(s) => Some(s),
            None => return error(StatusCode::BAD_REQUEST, "bad_spelling", "spelling must be 4.1 or 4.3"),
        },
    };
    let card = CardChoice::parse(req.card.as_deref());
    match page::settle(state.into_inner(), &req.merchant_id, &req.invoice_no, outcome, card, spelling, true).await {
        Ok(report) => HttpResponse::Ok().json(report.to_json()),
        Err(e) => {
            let (status, code) = match e {
                PayError::UnknownInvoice => (StatusCode::NOT_FOUND, "unknown_invoice"),
                PayError::AlreadyFinal => (StatusCode::CONFLICT, "already_completed"),
                PayError::CardNotOffered => (StatusCode::BAD_REQUEST, "card_not_offered"),
            };
            error(status, code, e.to_string())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoiceBody {
    #[serde(rename = "merchantID")]
    merchant_id: String,
    #[serde(rename = "invoiceNo")]
    invoice_no: String,
}

/// `POST /control/release`: `{"merchantID", "invoiceNo"}`.
pub(crate) async fn release(body: web::Bytes, state: web::Data<SimState>) -> HttpResponse {
    let req: InvoiceBody = match parse_json(&body) {
        Ok(r) => r,
        Err(message) => return bad_json(message),
    };
    let released = state.release(&req.merchant_id, &req.invoice_no);
    HttpResponse::Ok().json(serde_json::json!({"released": released}))
}

fn path_pair(req: &HttpRequest) -> (String, String) {
    let get = |k: &str| req.match_info().get(k).unwrap_or_default().to_string();
    (get("merchant"), get("invoice"))
}

/// `GET /control/ledger`.
pub(crate) async fn ledger_all(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.entries())
}

/// `GET /control/ledger/{merchantID}/{invoiceNo}`.
pub(crate) async fn ledger(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let (m, i) = path_pair(&req);
    match state.entry(&m, &i) {
        Some(entry) => HttpResponse::Ok().json(entry),
        None => error(StatusCode::NOT_FOUND, "unknown_invoice", "no such invoice"),
    }
}

/// `GET /control/inquiries/{merchantID}/{invoiceNo}`.
pub(crate) async fn inquiries(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let (m, i) = path_pair(&req);
    let count = state.inquiry_count(&m, &i);
    HttpResponse::Ok().json(serde_json::json!({"merchantID": m, "invoiceNo": i, "count": count}))
}

/// `POST /control/reset`.
pub(crate) async fn reset(state: web::Data<SimState>) -> HttpResponse {
    state.reset();
    HttpResponse::Ok().json(serde_json::json!({"reset": true}))
}
