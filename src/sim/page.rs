//! The hosted payment page at `webPaymentUrl` (`/pay/<url-encoded paymentToken>`): plain
//! server-rendered HTML where a person or a test picks a card and an outcome. Choosing one records
//! the result, sends the backend notification in the background and answers a page that
//! auto-posts `paymentResponse` to `frontendReturnUrl` (or JSON with `Accept: application/json`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::control::PayError;
use super::ledger::{Delivery, LedgerEntry, Outcome};
use super::notify;
use super::scenario::Spelling;
use super::state::{CardChoice, SimState};

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes `%XX` escapes (a `+` stays a `+`: payment tokens contain it). `None` if malformed.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The payment token from `/pay/<token>` as sent (percent-encoded in the raw path).
fn token_of(req: &HttpRequest) -> Option<String> {
    let raw = req.path().strip_prefix("/pay/")?.trim_end_matches('/');
    percent_decode(raw).filter(|t| !t.is_empty() && t.len() <= 512)
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn wants_json(req: &HttpRequest, query: &[(String, String)]) -> bool {
    let accept = req.headers().get(actix_web::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("application/json") || field(query, "format") == Some("json")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}\
fieldset{margin:1rem 0}label{display:block;margin:.3rem 0}\
button{margin:.3rem .3rem 0 0;padding:.5rem .9rem;font-size:1rem;cursor:pointer}\
.note{color:#666;font-size:.9rem}";

fn page(status: StatusCode, title: &str, head_extra: &str, body_attrs: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title>{head_extra}<style>{STYLE}</style></head>\n<body{body_attrs}>\n<main>\n{body}\n</main>\n\
         <p class=\"note\">pgw-sim: a local 2C2P PGW simulator. No real payment takes place.</p>\n</body></html>\n",
        esc(title)
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html)
}

fn message(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    page(status, title, "", "", &format!("<h1>{}</h1>\n<p>{}</p>", esc(title), esc(text)))
}

fn json_error(status: StatusCode, code: &str, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({"error": code, "message": text}))
}

/// `GET /pay/{token}`.
pub(crate) async fn show(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let Some(token) = token_of(&req) else {
        return message(StatusCode::NOT_FOUND, "Unknown payment", "This payment link is not valid.");
    };
    let Some(entry) = state.entry_by_token(&token) else {
        return message(StatusCode::NOT_FOUND, "Unknown payment", "This payment link is not valid.");
    };
    if entry.is_final() {
        return message(
            StatusCode::CONFLICT,
            "Payment already completed",
            &format!("9041 Payment token already used (result {}).", entry.status),
        );
    }
    if entry.result.is_none() && entry.token_expires_at <= Utc::now() {
        return message(StatusCode::GONE, "Payment link expired", "This payment token has expired.");
    }
    let query = form_pairs(req.query_string());
    let spelling = field(&query, "spelling").and_then(Spelling::parse);
    render_form(&state, &entry, &token, spelling)
}

fn render_form(state: &SimState, entry: &LedgerEntry, token: &str, spelling: Option<Spelling>) -> HttpResponse {
    let merchant = state.merchant(&entry.merchant_id);
    let name = merchant.and_then(|m| m.name.clone()).unwrap_or_else(|| entry.merchant_id.clone());
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let action = match spelling {
        Some(s) => format!("/pay/{encoded}?spelling={}", s.as_str()),
        None => format!("/pay/{encoded}"),
    };
    let mut cards = String::new();
    for (i, t) in entry.customer_tokens.iter().enumerate() {
        let masked = merchant.map(|m| state.card(m, t).masked_pan).unwrap_or_default();
        cards.push_str(&format!(
            "<label><input type=\"radio\" name=\"card\" value=\"{}\"{}> <span class=\"card\" data-token=\"{}\">{}</span> (stored card)</label>\n",
            esc(t),
            if i == 0 { " checked" } else { "" },
            esc(t),
            esc(&masked)
        ));
    }
    cards.push_str(&format!(
        "<label><input type=\"radio\" name=\"card\" value=\"new\"{}> New card</label>\n",
        if entry.customer_tokens.is_empty() { " checked" } else { "" }
    ));
    let mut buttons = String::new();
    for o in Outcome::ALL {
        buttons.push_str(&format!(
            "<button type=\"submit\" name=\"outcome\" value=\"{}\">{} ({} {})</button>\n",
            o.name(),
            button_label(o),
            o.resp_code(),
            esc(o.resp_desc())
        ));
    }
    let pending_note = if entry.result.is_some() {
        "<p class=\"note\">A pending result (0001) is recorded; choose the final outcome.</p>\n"
    } else {
        ""
    };
    let body = format!(
        "<h1>Pay {amount} {currency}</h1>\n<dl>\n<dt>Merchant</dt><dd id=\"merchant\">{name}</dd>\n\
         <dt>Invoice</dt><dd id=\"invoice\">{invoice}</dd>\n<dt>Description</dt><dd id=\"description\">{desc}</dd>\n\
         <dt>Amount</dt><dd id=\"amount\">{amount} {currency}</dd>\n</dl>\n{pending_note}\
         <form method=\"post\" action=\"{action}\">\n<fieldset><legend>Card</legend>\n{cards}</fieldset>\n\
         <fieldset><legend>Outcome</legend>\n{buttons}</fieldset>\n</form>",
        amount = esc(&entry.amount.major_string()),
        currency = esc(&entry.amount.currency),
        name = esc(&name),
        invoice = esc(&entry.invoice_no),
        desc = esc(&entry.description),
        action = esc(&action),
    );
    page(StatusCode::OK, &format!("Pay {} · {}", entry.invoice_no, name), "", "", &body)
}

fn button_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "Pay: success",
        Outcome::Decline => "Decline",
        Outcome::Cancel => "Cancel",
        Outcome::Pending => "Leave pending",
        Outcome::ThreeDsFail => "3-D Secure fails",
    }
}

/// `POST /pay/{token}` with `outcome=` (and `card=`, `spelling=`).
pub(crate) async fn choose(req: HttpRequest, body: web::Bytes, state: web::Data<SimState>) -> HttpResponse {
    let query = form_pairs(req.query_string());
    let json = wants_json(&req, &query);
    let fail = |status: StatusCode, code: &str, title: &str, text: &str| {
        if json {
            json_error(status, code, text)
        } else {
            message(status, title, text)
        }
    };
    let Some(entry) = token_of(&req).and_then(|t| state.entry_by_token(&t)) else {
        return fail(StatusCode::NOT_FOUND, "unknown_token", "Unknown payment", "This payment link is not valid.");
    };
    if entry.result.is_none() && entry.token_expires_at <= Utc::now() {
        return fail(StatusCode::GONE, "token_expired", "Payment link expired", "This payment token has expired.");
    }
    let Ok(form_text) = std::str::from_utf8(&body) else {
        return fail(StatusCode::BAD_REQUEST, "bad_form", "Bad request", "The form is not UTF-8.");
    };
    let form = form_pairs(form_text);
    let Some(outcome) = field(&form, "outcome").or(field(&query, "outcome")).and_then(Outcome::parse) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "bad_outcome",
            "Bad request",
            "outcome must be one of success, decline, cancel, pending, 3ds_fail.",
        );
    };
    let spelling = field(&form, "spelling").or(field(&query, "spelling")).and_then(Spelling::parse);
    let card = CardChoice::parse(field(&form, "card"));
    let state = state.into_inner();
    match settle(state, &entry.merchant_id, &entry.invoice_no, outcome, card, spelling, json).await {
        Ok(report) if json => HttpResponse::Ok().json(report.to_json()),
        Ok(report) => return_page(&report),
        Err(PayError::AlreadyFinal) => fail(
            StatusCode::CONFLICT,
            "already_completed",
            "Payment already completed",
            "9041 Payment token already used.",
        ),
        Err(PayError::CardNotOffered) => fail(
            StatusCode::BAD_REQUEST,
            "card_not_offered",
            "Bad request",
            "card must be one of the invoice's customer tokens or `new`.",
        ),
        Err(PayError::UnknownInvoice) => {
            fail(StatusCode::NOT_FOUND, "unknown_invoice", "Unknown payment", "This payment is not known.")
        }
    }
}

/// What choosing an outcome did (the JSON answer of the page and of `POST /control/pay`).
#[derive(Debug, Clone)]
pub struct PayReport {
    pub merchant_id: String,
    pub invoice_no: String,
    pub resp_code: String,
    pub resp_desc: String,
    pub tran_ref: String,
    pub frontend_return_url: Option<String>,
    pub payment_response: String,
    pub delivery: Delivery,
    pub delivered: bool,
    pub status: Option<u16>,
}

impl PayReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "merchantID": self.merchant_id,
            "invoiceNo": self.invoice_no,
            "respCode": self.resp_code,
            "respDesc": self.resp_desc,
            "tranRef": self.tran_ref,
            "frontendReturnUrl": self.frontend_return_url,
            "paymentResponse": self.payment_response,
            "notification": {
                "delivery": self.delivery,
                "delivered": self.delivered,
                "status": self.status,
            },
        })
    }
}

/// Records the outcome, starts the notification and, if `wait`, waits for its first attempt when
/// it is sent right away (so a test knows the notification has been answered).
pub(crate) async fn settle(
    state: Arc<SimState>,
    merchant_id: &str,
    invoice_no: &str,
    outcome: Outcome,
    card: CardChoice,
    spelling: Option<Spelling>,
    wait: bool,
) -> Result<PayReport, PayError> {
    let merchant = state.merchant(merchant_id).ok_or(PayError::UnknownInvoice)?;
    let settled = state.settle(merchant, invoice_no, outcome, card, spelling)?;
    let record = settled.entry.result.clone();
    tracing::info!(
        merchant = %merchant_id, invoice = %invoice_no, outcome = outcome.name(),
        delivery = ?settled.delivery, "payment outcome recorded"
    );
    if let Some(job) = settled.job {
        notify::spawn(state.clone(), job);
    }
    let (mut delivered, mut status) = (false, None);
    if let (true, Delivery::Immediate, Some(rx)) = (wait, settled.delivery, settled.first_attempt) {
        let limit = state.config.notify_timeout + Duration::from_secs(2);
        if let Ok(Ok(first)) = tokio::time::timeout(limit, rx).await {
            delivered = first.delivered;
            status = first.status;
        }
    }
    Ok(PayReport {
        merchant_id: merchant_id.to_string(),
        invoice_no: invoice_no.to_string(),
        resp_code: outcome.resp_code().to_string(),
        resp_desc: outcome.resp_desc().to_string(),
        tran_ref: record.map(|r| r.tran_ref).unwrap_or_default(),
        frontend_return_url: settled.frontend_return_url,
        payment_response: settled.payment_response,
        delivery: settled.delivery,
        delivered,
        status,
    })
}

/// The page that sends the browser back to the merchant: a POST form with `paymentResponse`,
/// submitted on load, plus a visible Continue button. The URL and the value are also in `<meta>`
/// tags for scripts.
fn return_page(report: &PayReport) -> HttpResponse {
    let Some(url) = &report.frontend_return_url else {
        return message(
            StatusCode::OK,
            "Payment recorded",
            &format!("{} {}. No frontendReturnUrl to return to.", report.resp_code, report.resp_desc),
        );
    };
    let head = format!(
        "<meta name=\"pgw-sim-frontend-return-url\" content=\"{}\">\
         <meta name=\"pgw-sim-payment-response\" content=\"{}\">",
        esc(url),
        esc(&report.payment_response)
    );
    let body = format!(
        "<h1>Payment result: {code} {desc}</h1>\n<p>Returning to the merchant&hellip;</p>\n\
         <form id=\"return\" method=\"post\" action=\"{url}\">\n\
         <input type=\"hidden\" name=\"paymentResponse\" value=\"{value}\">\n\
         <button type=\"submit\">Continue</button>\n</form>",
        code = esc(&report.resp_code),
        desc = esc(&report.resp_desc),
        url = esc(url),
        value = esc(&report.payment_response),
    );
    page(
        StatusCode::OK,
        "Returning to the merchant",
        &head,
        " onload=\"document.getElementById('return').submit()\"",
        &body,
    )
}

/// `GET /demo/result?invoiceNo=…&status=…`: a stand-in for the merchant's result page, so a local
/// demo has somewhere to land after pgw-relay's redirect. It shows what the relay said.
pub async fn demo_result(query: web::Query<std::collections::HashMap<String, String>>) -> HttpResponse {
    let get = |k: &str| esc(query.get(k).map(String::as_str).unwrap_or("?"));
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Payment result</title></head><body>\n\
         <h1>Payment result</h1>\n<p>Invoice <strong>{}</strong>: <strong>{}</strong></p>\n\
         <p>This status comes from pgw-relay's own state, not from the browser.</p>\n</body></html>",
        get("invoiceNo"),
        get("status")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_html_escaping_and_percent_decoding() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(percent_decode("ab%2Bc%2fd%3D%3d+").unwrap(), "ab+c/d==+");
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
