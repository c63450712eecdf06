//! pgw-sim end to end over loopback HTTP: a real `SimServer` and a small merchant-side receiver
//! for backend notifications (`/notify`) and browser returns (`/return`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, HttpRequest, HttpResponse};
use pgw_relay::protocol::frontend_return;
use pgw_relay::protocol::jwt::{self, JwtError};
use pgw_relay::protocol::payment_result::{PaymentResult, RequestError};
use pgw_relay::protocol::payment_token::PaymentTokenResponse;
use pgw_relay::sim::{Delivery, Outcome, Scenario, Scope, SimConfig, SimMerchant, SimServer};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::helpers::serve_on_thread;

const MID: &str = "JT01";
const KEY: &str = "ECC4E54DBA738857B84A7EBC6B5DC7187B8DA68750E88AB53AAA41F548D6F2D9";
const OTHER_KEY: &str = "CD229682D3297390B9F66FF4020B758F4A5E625AF4992E5D75D311D6458B38E2";
const CARD_VISA: &str = "28052010234224845229";
const CARD_MC: &str = "7305201872122484776";

// ------------------------------------------------------------------ harness

struct Receiver {
    base_url: String,
    notifications: mpsc::UnboundedReceiver<String>,
    returns: mpsc::UnboundedReceiver<String>,
    /// Answer 500 to this many notifications before answering 200.
    fail_next: Arc<AtomicU32>,
    handle: ServerHandle,
}

impl Receiver {
    fn start() -> Receiver {
        let (ntx, notifications) = mpsc::unbounded_channel::<String>();
        let (rtx, returns) = mpsc::unbounded_channel::<String>();
        let fail_next = Arc::new(AtomicU32::new(0));
        let fail = fail_next.clone();
        let (base_url, handle) = serve_on_thread(move |req: HttpRequest, body: web::Bytes| {
            let (ntx, rtx, fail) = (ntx.clone(), rtx.clone(), fail.clone());
            async move {
                let text = String::from_utf8_lossy(&body).to_string();
                match req.path() {
                    "/notify" => {
                        let _ = ntx.send(text);
                        let failing =
                            fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                        if failing {
                            HttpResponse::InternalServerError().body("not now")
                        } else {
                            HttpResponse::Ok().finish()
                        }
                    }
                    "/return" => {
                        let _ = rtx.send(text);
                        HttpResponse::Ok().body("thanks")
                    }
                    _ => HttpResponse::NotFound().finish(),
                }
            }
        });
        Receiver { base_url, notifications, returns, fail_next, handle }
    }

    fn notify_url(&self) -> String {
        format!("{}/notify", self.base_url)
    }

    fn return_url(&self) -> String {
        format!("{}/return?merchantID={MID}", self.base_url)
    }

    /// The JWT of the next notification, if one arrives within `within`.
    async fn notification(&mut self, within: Duration) -> Option<String> {
        let body = tokio::time::timeout(within, self.notifications.recv()).await.ok().flatten()?;
        let v: Value = serde_json::from_str(&body).expect("notification body is JSON");
        Some(v["payload"].as_str().expect("payload string").to_string())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

struct Harness {
    sim: SimServer,
    recv: Receiver,
    http: reqwest::Client,
}

fn merchant() -> SimMerchant {
    SimMerchant::new(MID, KEY)
        .with_timezone("+08:00")
        .with_card(CARD_VISA, "411111XXXXXX1111")
        .with_card(CARD_MC, "520000XXXXXX0007")
}

fn harness_with(adjust: impl FnOnce(&mut SimConfig)) -> Harness {
    let mut config = SimConfig::ephemeral(vec![merchant()]);
    config.notify_backoff = Duration::from_millis(100);
    config.reorder_hold = Duration::from_secs(5);
    adjust(&mut config);
    let sim = SimServer::start(config).expect("sim starts");
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    Harness { sim, recv: Receiver::start(), http }
}

fn harness() -> Harness {
    harness_with(|_| {})
}

impl Harness {
    fn token_claims(&self, invoice: &str) -> Value {
        json!({
            "merchantID": MID,
            "invoiceNo": invoice,
            "description": "item 1 <b>&</b>",
            "amount": 1000.00,
            "currencyCode": "SGD",
            "customerToken": [CARD_VISA, CARD_MC],
            "backendReturnUrl": self.recv.notify_url(),
            "frontendReturnUrl": self.recv.return_url(),
            "userDefined1": "order-42",
        })
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self.http.post(self.sim.url(path)).json(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Posts a signed envelope; answers the HTTP status and the body.
    async fn call(&self, path: &str, claims: &Value, key: &str) -> (u16, Value) {
        self.post_json(path, &json!({ "payload": jwt::sign(claims, key) })).await
    }

    /// Creates a payment token; panics unless the answer is a verified 0000.
    async fn create(&self, claims: &Value) -> PaymentTokenResponse {
        let (status, body) = self.call("/payment/4.3/paymentToken", claims, KEY).await;
        assert_eq!(status, 200);
        let payload = body["payload"].as_str().unwrap_or_else(|| panic!("signed answer expected: {body}"));
        let (resp, _) = jwt::verify::<PaymentTokenResponse>(payload, KEY, None).expect("answer verifies with the key");
        assert_eq!(resp.resp_code, "0000", "{resp:?}");
        resp
    }

    async fn create_invoice(&self, invoice: &str) -> PaymentTokenResponse {
        self.create(&self.token_claims(invoice)).await
    }

    /// Chooses an outcome on the payment page in JSON mode.
    async fn choose(&self, page_url: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self.http.post(page_url).header("Accept", "application/json").form(form).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn inquire(&self, invoice: &str) -> (u16, Value) {
        self.call("/payment/4.3/paymentInquiry", &json!({"merchantID": MID, "invoiceNo": invoice, "locale": "en"}), KEY)
            .await
    }

    async fn scenario(&self, body: Value) {
        let (status, answer) = self.post_json("/control/scenario", &body).await;
        assert_eq!(status, 200, "{answer}");
    }
}

/// The unsigned error code of an answer (panics if the answer is signed).
fn unsigned_code(body: &Value) -> String {
    assert!(body.get("payload").is_none(), "expected an unsigned error, got {body}");
    let e: RequestError = serde_json::from_value(body.clone()).expect("respCode/respDesc");
    assert!(!e.resp_desc.is_empty());
    e.resp_code
}

fn verified_result(payload: &str) -> PaymentResult {
    jwt::verify::<PaymentResult>(payload, KEY, None).expect("verifies with the merchant key").0
}

fn verified_json(payload: &str) -> Value {
    jwt::verify::<Value>(payload, KEY, None).expect("verifies with the merchant key").0
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn token_with_two_customer_tokens_and_the_payment_page() {
    let h = harness();
    let resp = h.create_invoice("INV-PAGE-1").await;
    let token = resp.payment_token.clone().unwrap();
    assert!(token.contains('+') && token.contains('/') && token.ends_with('='), "{token}");
    let url = resp.web_payment_url.clone().unwrap();
    assert!(url.starts_with(&format!("{}/pay/", h.sim.base_url())), "{url}");
    assert!(url.contains("%2B") && url.contains("%3D"), "token is URL-encoded: {url}");

    let page = h.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("411111XXXXXX1111") && html.contains("520000XXXXXX0007"), "{html}");
    assert!(html.contains("INV-PAGE-1") && html.contains("1000.00 SGD"));
    assert!(html.contains("item 1 &lt;b&gt;&amp;&lt;/b&gt;"), "description is escaped");
    assert_eq!(html.matches("name=\"outcome\"").count(), 5);
    for o in ["0000", "4005", "0003", "0001", "4081"] {
        assert!(html.contains(o), "button for {o}");
    }
    assert!(html.contains("value=\"new\""));

    let entry = h.sim.control().ledger(MID, "INV-PAGE-1").unwrap();
    assert_eq!(entry.amount.minor, 100_000);
    assert_eq!(entry.amount.currency, "SGD");
    assert_eq!(entry.customer_tokens, vec![CARD_VISA.to_string(), CARD_MC.to_string()]);
    assert_eq!(entry.user_defined[0].as_deref(), Some("order-42"));
    assert_eq!(entry.payment_token, token);

    // Unknown token: 404 page.
    let missing = h.http.get(h.sim.url("/pay/bm90LWEtdG9rZW4%3D")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // The same token request with the same idempotencyID answers the same token; without it, 9015.
    let mut claims = h.token_claims("INV-IDEM");
    claims["idempotencyID"] = json!("idem-1");
    let first = h.create(&claims).await;
    let again = h.create(&claims).await;
    assert_eq!(first.payment_token, again.payment_token);
}

#[tokio::test]
async fn expired_tokens_get_a_410_page() {
    let h = harness_with(|c| c.token_ttl = Duration::from_millis(300));
    let resp = h.create_invoice("INV-EXP").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let page = h.http.get(resp.web_payment_url.unwrap()).send().await.unwrap();
    assert_eq!(page.status(), 410);
}

#[tokio::test]
async fn request_errors_are_unsigned_2c2p_codes() {
    let h = harness();
    h.create_invoice("INV-ERR").await;

    // 9015: the invoiceNo is taken.
    let (_, body) = h.call("/payment/4.3/paymentToken", &h.token_claims("INV-ERR"), KEY).await;
    assert_eq!(unsigned_code(&body), "9015");
    // 9042: signed with another key.
    let (_, body) = h.call("/payment/4.3/paymentToken", &h.token_claims("INV-ERR-2"), OTHER_KEY).await;
    assert_eq!(unsigned_code(&body), "9042");
    // 9202: an unknown token, and a string instead of an array.
    let mut claims = h.token_claims("INV-ERR-3");
    claims["customerToken"] = json!(["not-a-token"]);
    let (_, body) = h.call("/payment/4.3/paymentToken", &claims, KEY).await;
    assert_eq!(unsigned_code(&body), "9202");
    claims["customerToken"] = json!(CARD_VISA);
    let (_, body) = h.call("/payment/4.3/paymentToken", &claims, KEY).await;
    assert_eq!(unsigned_code(&body), "9202");
    // 9007: unknown merchant; 9005: missing field; 9009 / 9010: amount, currency.
    let mut claims = h.token_claims("INV-ERR-4");
    claims["merchantID"] = json!("NOPE");
    let (_, body) = h.call("/payment/4.3/paymentToken", &claims, KEY).await;
    assert_eq!(unsigned_code(&body), "9007");
    let mut claims = h.token_claims("INV-ERR-4");
    claims.as_object_mut().unwrap().remove("description");
    let (_, body) = h.call("/payment/4.3/paymentToken", &claims, KEY).await;
    assert_eq!(unsigned_code(&body), "9005");
    let mut claims = h.token_claims("INV-ERR-4");
    claims["amount"] = json!("12.345");
    let (_, body) = h.call("/payment/4.3/paymentToken", &claims, KEY).await;
    assert_eq!(unsigned_code(&body), "9009");
    claims["amount"] = json!("12");
    claims["currencyCode"] = json!("XYZ");
    let (_, body) = h.call("/payment/4.3/paymentToken", &claims, KEY).await;
    assert_eq!(unsigned_code(&body), "9010");
    // Envelope problems: 6101 not JSON, 6102 no payload, 6103 not a JWT.
    let resp = h.http.post(h.sim.url("/payment/4.3/paymentToken")).body("{oops").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(unsigned_code(&resp.json().await.unwrap()), "6101");
    let (_, body) = h.post_json("/payment/4.3/paymentToken", &json!({"nope": 1})).await;
    assert_eq!(unsigned_code(&body), "6102");
    let (_, body) = h.post_json("/payment/4.3/paymentToken", &json!({"payload": "x.y.z"})).await;
    assert_eq!(unsigned_code(&body), "6103");
    // Over 64 KiB: 413.
    let big = json!({"payload": "a".repeat(70 * 1024)});
    let (status, _) = h.post_json("/payment/4.3/paymentToken", &big).await;
    assert_eq!(status, 413);
    // Path casing and the 4.1 path are accepted; other paths and methods are not.
    let (_, body) = h.call("/payment/4.1/PaymentToken", &h.token_claims("INV-CASE"), KEY).await;
    assert!(body["payload"].is_string(), "{body}");
    let (status, _) = h.call("/payment/4.2/paymentToken", &h.token_claims("INV-CASE-2"), KEY).await;
    assert_eq!(status, 404);
    let resp = h.http.get(h.sim.url("/payment/4.3/paymentToken")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn every_outcome_notifies_and_returns_to_the_merchant() {
    let mut h = harness();
    let cases = [
        (Outcome::Success, "0000", CARD_VISA, "411111XXXXXX1111"),
        (Outcome::Decline, "4005", CARD_MC, "520000XXXXXX0007"),
        (Outcome::Cancel, "0003", CARD_VISA, "411111XXXXXX1111"),
        (Outcome::Pending, "0001", "new", "411111XXXXXX1111"),
        (Outcome::ThreeDsFail, "4081", CARD_MC, "520000XXXXXX0007"),
    ];
    for (i, (outcome, code, card, pan)) in cases.into_iter().enumerate() {
        let invoice = format!("INV-OUT-{i}");
        let resp = h.create_invoice(&invoice).await;
        let (status, report) =
            h.choose(&resp.web_payment_url.unwrap(), &[("outcome", outcome.name()), ("card", card)]).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["respCode"], code);
        assert_eq!(report["notification"]["delivered"], true, "{report}");
        assert_eq!(report["notification"]["status"], 200);
        assert_eq!(report["frontendReturnUrl"], h.recv.return_url());
        let back = frontend_return::decode(report["paymentResponse"].as_str().unwrap()).unwrap();
        assert_eq!(back.invoice_no, invoice);
        assert_eq!(back.resp_code.as_deref(), Some("2000"));

        let payload = h.recv.notification(Duration::from_secs(5)).await.expect("notification");
        let r = verified_result(&payload);
        assert_eq!(r.merchant_id.as_deref(), Some(MID));
        assert_eq!(r.invoice_no.as_deref(), Some(invoice.as_str()));
        assert_eq!(r.resp_code.as_deref(), Some(code));
        assert_eq!(r.amount.as_deref(), Some("1000.00"));
        assert_eq!(r.currency_code.as_deref(), Some("SGD"));
        assert_eq!(r.account_no.as_deref(), Some(pan));
        assert_eq!(r.user_defined1.as_deref(), Some("order-42"));
        assert_eq!(r.customer_token.as_deref(), if card == "new" { None } else { Some(card) });
        assert_eq!(r.approval_code.is_some(), outcome == Outcome::Success);
        assert_eq!(r.transaction_date_time.as_deref().map(str::len), Some(14));
        assert!(r.tran_ref.is_some() && r.reference_no.is_some());
        let raw = verified_json(&payload);
        assert!(raw["amount"].is_number(), "amount is a JSON number like 2C2P's");
        assert!(raw.get("accountNo").is_some() && raw.get("cardNo").is_none(), "4.3 spelling");
    }

    // A pending invoice can still be settled; a final one cannot.
    let pending = h.sim.control().ledger(MID, "INV-OUT-3").unwrap();
    let url = pending.web_payment_url.clone();
    let (status, _) = h.choose(&url, &[("outcome", "success")]).await;
    assert_eq!(status, 200);
    let r = verified_result(&h.recv.notification(Duration::from_secs(5)).await.unwrap());
    assert_eq!(r.resp_code.as_deref(), Some("0000"));
    let (status, body) = h.choose(&url, &[("outcome", "decline")]).await;
    assert_eq!(status, 409, "{body}");
    let entry = h.sim.control().ledger(MID, "INV-OUT-3").unwrap();
    assert_eq!(entry.results.len(), 2);
    assert_eq!(entry.status, "success");

    // Bad form input.
    let resp = h.create_invoice("INV-OUT-BAD").await;
    let url = resp.web_payment_url.unwrap();
    let (status, _) = h.choose(&url, &[("outcome", "refund")]).await;
    assert_eq!(status, 400);
    let (status, _) = h.choose(&url, &[("outcome", "success"), ("card", "4111111111111111")]).await;
    assert_eq!(status, 400);

    // The HTML answer auto-posts paymentResponse to frontendReturnUrl; the form works as is.
    let html = h
        .http
        .post(&url)
        .form(&[("outcome", "success"), ("card", CARD_MC)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("onload="), "{html}");
    let action = between(&html, "<form id=\"return\" method=\"post\" action=\"", "\"").replace("&amp;", "&");
    assert_eq!(action, h.recv.return_url());
    let value = between(&html, "name=\"paymentResponse\" value=\"", "\"");
    assert_eq!(frontend_return::decode(&value).unwrap().invoice_no, "INV-OUT-BAD");
    let back = h.http.post(&action).form(&[("paymentResponse", value.as_str())]).send().await.unwrap();
    assert_eq!(back.status(), 200);
    let form = tokio::time::timeout(Duration::from_secs(5), h.recv.returns.recv()).await.unwrap().unwrap();
    assert!(form.starts_with("paymentResponse="));
    let r = verified_result(&h.recv.notification(Duration::from_secs(5)).await.unwrap());
    assert_eq!(r.account_no.as_deref(), Some("520000XXXXXX0007"));
    assert_eq!(r.channel_code.as_deref(), Some("MA"));
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text.find(start).unwrap_or_else(|| panic!("`{start}` not in {text}")) + start.len();
    let len = text[from..].find(end).unwrap();
    text[from..from + len].to_string()
}

#[tokio::test]
async fn four_one_spelling() {
    let mut h = harness();
    let spelled_41 = |v: &Value| {
        v.get("cardNo").is_some()
            && v.get("cardToken").is_some()
            && v.get("accountNo").is_none()
            && v.get("customerToken").is_none()
    };

    // A token created on the 4.1 path notifies with the 4.1 names.
    let (_, body) = h.call("/payment/4.1/paymentToken", &h.token_claims("INV-41-A"), KEY).await;
    let (resp, _) = jwt::verify::<PaymentTokenResponse>(body["payload"].as_str().unwrap(), KEY, None).unwrap();
    h.choose(&resp.web_payment_url.unwrap(), &[("outcome", "success")]).await;
    let v = verified_json(&h.recv.notification(Duration::from_secs(5)).await.unwrap());
    assert!(spelled_41(&v), "{v}");
    assert_eq!(v["cardToken"], CARD_VISA);
    assert_eq!(verified_result(&jwt::sign(&v, KEY)).account_no.as_deref(), Some("411111XXXXXX1111"));

    // ?spelling=4.1 on the form.
    let resp = h.create_invoice("INV-41-B").await;
    let url = format!("{}?spelling=4.1", resp.web_payment_url.unwrap());
    h.choose(&url, &[("outcome", "decline")]).await;
    let v = verified_json(&h.recv.notification(Duration::from_secs(5)).await.unwrap());
    assert!(spelled_41(&v), "{v}");

    // The scenario control (HTTP), also for inquiry answers.
    h.create_invoice("INV-41-C").await;
    h.scenario(json!({"merchantID": MID, "invoiceNo": "INV-41-C", "spelling": "4.1"})).await;
    let (status, report) =
        h.post_json("/control/pay", &json!({"merchantID": MID, "invoiceNo": "INV-41-C", "outcome": "success"})).await;
    assert_eq!(status, 200, "{report}");
    let v = verified_json(&h.recv.notification(Duration::from_secs(5)).await.unwrap());
    assert!(spelled_41(&v), "{v}");
    let (_, body) = h.inquire("INV-41-C").await;
    assert!(spelled_41(&verified_json(body["payload"].as_str().unwrap())));
}

#[tokio::test]
async fn notification_controls_drop_duplicate_delay_wrong_signature_reorder_retry() {
    let mut h = harness();
    let quiet = Duration::from_millis(300);

    // drop
    h.create_invoice("INV-DROP").await;
    h.scenario(json!({"merchantID": MID, "invoiceNo": "INV-DROP", "drop": true})).await;
    let report = h.sim.control().pay(MID, "INV-DROP", Outcome::Success).await.unwrap();
    assert_eq!(report.delivery, Delivery::Dropped);
    assert!(!report.delivered);
    assert!(h.recv.notification(quiet).await.is_none());
    assert_eq!(h.sim.control().ledger(MID, "INV-DROP").unwrap().notifications[0].delivery, Delivery::Dropped);

    // duplicate: the same payload twice
    h.create_invoice("INV-DUP").await;
    h.sim.control().set_scenario(Scope::invoice(MID, "INV-DUP"), Scenario { duplicate: true, ..Scenario::default() });
    h.sim.control().pay(MID, "INV-DUP", Outcome::Success).await.unwrap();
    let a = h.recv.notification(Duration::from_secs(5)).await.unwrap();
    let b = h.recv.notification(Duration::from_secs(5)).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(verified_result(&a).resp_code.as_deref(), Some("0000"));

    // delay
    h.create_invoice("INV-DELAY").await;
    h.scenario(json!({"merchantID": MID, "invoiceNo": "INV-DELAY", "delay_ms": 400})).await;
    let started = Instant::now();
    let report = h.sim.control().pay(MID, "INV-DELAY", Outcome::Decline).await.unwrap();
    assert_eq!(report.delivery, Delivery::Delayed);
    assert!(started.elapsed() < Duration::from_millis(300), "the answer does not wait for a delayed notification");
    let late = h.recv.notification(Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(verified_result(&late).resp_code.as_deref(), Some("4005"));

    // wrong_signature (merchant-wide scope)
    h.create_invoice("INV-WRONG").await;
    h.scenario(json!({"merchantID": MID, "wrong_signature": true})).await;
    h.sim.control().pay(MID, "INV-WRONG", Outcome::Success).await.unwrap();
    let bad = h.recv.notification(Duration::from_secs(5)).await.unwrap();
    assert_eq!(jwt::verify::<Value>(&bad, KEY, None).unwrap_err(), JwtError::BadSignature);
    let (_, body) = h.inquire("INV-WRONG").await;
    assert_eq!(jwt::verify::<Value>(body["payload"].as_str().unwrap(), KEY, None).unwrap_err(), JwtError::BadSignature);
    h.scenario(json!({"merchantID": MID})).await; // back to normal

    // reorder: held until the frontend return has been answered and /control/release is called
    let resp = h.create_invoice("INV-REORDER").await;
    h.scenario(json!({"merchantID": MID, "invoiceNo": "INV-REORDER", "reorder": true})).await;
    let (_, report) = h.choose(&resp.web_payment_url.unwrap(), &[("outcome", "success")]).await;
    assert_eq!(report["notification"]["delivery"], "held");
    let back = h
        .http
        .post(report["frontendReturnUrl"].as_str().unwrap())
        .form(&[("paymentResponse", report["paymentResponse"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    assert!(h.recv.notification(quiet).await.is_none(), "held");
    let (_, released) = h.post_json("/control/release", &json!({"merchantID": MID, "invoiceNo": "INV-REORDER"})).await;
    assert_eq!(released["released"], 1);
    let held = h.recv.notification(Duration::from_secs(5)).await.unwrap();
    assert_eq!(verified_result(&held).invoice_no.as_deref(), Some("INV-REORDER"));

    // retry on a non-2xx answer (backoff 100 ms in this harness)
    h.create_invoice("INV-RETRY").await;
    h.recv.fail_next.store(1, Ordering::SeqCst);
    let report = h.sim.control().pay(MID, "INV-RETRY", Outcome::Success).await.unwrap();
    assert!(!report.delivered);
    assert_eq!(report.status, Some(500));
    let first = h.recv.notification(Duration::from_secs(5)).await.unwrap();
    let second = h.recv.notification(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first, second);
    // The second attempt is recorded once its answer is back.
    let deadline = Instant::now() + Duration::from_secs(5);
    let n = loop {
        let n = h.sim.control().ledger(MID, "INV-RETRY").unwrap().notifications[0].clone();
        if n.finished || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(n.attempts.iter().map(|a| a.status).collect::<Vec<_>>(), vec![Some(500), Some(200)]);
    assert!(n.delivered && n.finished);
}

#[tokio::test]
async fn inquiry_answers_and_controls() {
    let h = harness();
    // Unknown invoice: a signed 2002.
    let (_, body) = h.inquire("NEVER-SEEN").await;
    let r = verified_result(body["payload"].as_str().unwrap());
    assert_eq!(r.resp_code.as_deref(), Some("2002"));

    // Known, not paid yet: 2002; after the payment: the result.
    h.create_invoice("INV-INQ").await;
    let (_, body) = h.inquire("INV-INQ").await;
    assert_eq!(verified_result(body["payload"].as_str().unwrap()).resp_code.as_deref(), Some("2002"));
    h.sim.control().pay(MID, "INV-INQ", Outcome::Success).await.unwrap();
    let (_, body) = h.inquire("INV-INQ").await;
    let r = verified_result(body["payload"].as_str().unwrap());
    assert_eq!(r.resp_code.as_deref(), Some("0000"));
    assert_eq!(r.amount.as_deref(), Some("1000.00"));
    assert_eq!(r.account_no.as_deref(), Some("411111XXXXXX1111"));
    assert_eq!(r.customer_token.as_deref(), Some(CARD_VISA));
    let notified = h.sim.control().ledger(MID, "INV-INQ").unwrap();
    assert_eq!(r.tran_ref, notified.result.as_ref().map(|r| r.tran_ref.clone()));

    // pending_for_n: two 0001 answers, then the truth.
    h.scenario(json!({"merchantID": MID, "invoiceNo": "INV-INQ", "pending_for_n": 2})).await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        let (_, body) = h.inquire("INV-INQ").await;
        codes.push(verified_result(body["payload"].as_str().unwrap()).resp_code.unwrap());
    }
    assert_eq!(codes, ["0001", "0001", "0000"]);

    // fail_5xx_for_n: two 503s, then the truth.
    h.scenario(json!({"merchantID": MID, "invoiceNo": "INV-INQ", "fail_5xx_for_n": 2})).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(h.inquire("INV-INQ").await.0);
    }
    assert_eq!(statuses, [503, 503, 200]);

    // unsigned_error: an unsigned 9042.
    h.scenario(json!({"merchantID": MID, "invoiceNo": "INV-INQ", "unsigned_error": "9042"})).await;
    let (status, body) = h.inquire("INV-INQ").await;
    assert_eq!(status, 200);
    assert_eq!(unsigned_code(&body), "9042");

    // Every inquiry naming the invoice was counted.
    let (_, count) = h.post_json("/control/scenario", &json!({"merchantID": MID, "invoiceNo": "INV-INQ"})).await;
    assert!(count["scenario"].is_object());
    let counted = h.http.get(h.sim.url(&format!("/control/inquiries/{MID}/INV-INQ"))).send().await.unwrap();
    let counted: Value = counted.json().await.unwrap();
    assert_eq!(counted["count"], 2 + 3 + 3 + 1);

    // Bad requests: wrong key, no invoice.
    let (_, body) =
        h.call("/payment/4.3/paymentInquiry", &json!({"merchantID": MID, "invoiceNo": "INV-INQ"}), OTHER_KEY).await;
    assert_eq!(unsigned_code(&body), "9042");
    let (_, body) = h.call("/payment/4.3/paymentInquiry", &json!({"merchantID": MID}), KEY).await;
    assert_eq!(unsigned_code(&body), "9005");
}

#[tokio::test]
async fn transaction_status_follows_the_flow() {
    let h = harness();
    let (_, body) = h.post_json("/payment/4.3/transactionStatus", &json!({"paymentToken": "unknown=="})).await;
    assert_eq!(body["respCode"], "2002");
    let resp = h.create_invoice("INV-TS").await;
    let token = resp.payment_token.unwrap();
    let (_, body) = h.post_json("/payment/4.3/transactionStatus", &json!({"paymentToken": token})).await;
    assert_eq!(body["respCode"], "2001");
    assert_eq!(body["invoiceNo"], "INV-TS");
    h.sim.control().pay(MID, "INV-TS", Outcome::Cancel).await.unwrap();
    let (_, body) = h.post_json("/payment/4.3/transactionStatus", &json!({"paymentToken": token})).await;
    assert_eq!(body["respCode"], "2000");
    assert_eq!(body["channelCode"], "CC");
    let (_, body) = h.post_json("/payment/4.3/transactionStatus", &json!({})).await;
    assert_eq!(unsigned_code(&body), "9005");
}

#[tokio::test]
async fn control_api_over_http() {
    let mut h = harness();
    h.create_invoice("INV-CTL").await;
    // Typos and bad JSON are refused.
    let (status, _) = h.post_json("/control/scenario", &json!({"dorp": true})).await;
    assert_eq!(status, 400);
    let (status, _) = h.post_json("/control/scenario", &json!({"invoiceNo": "INV-CTL", "drop": true})).await;
    assert_eq!(status, 400);
    let resp = h.http.post(h.sim.url("/control/pay")).body("{").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let (status, _) =
        h.post_json("/control/pay", &json!({"merchantID": MID, "invoiceNo": "NOPE", "outcome": "success"})).await;
    assert_eq!(status, 404);

    // A global scenario, listed, then cleared by reset along with the ledger.
    h.scenario(json!({"pending_for_n": 1})).await;
    let listed: Value = h.http.get(h.sim.url("/control/scenario")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["scenario"]["pending_for_n"], 1);
    let (status, report) = h
        .post_json(
            "/control/pay",
            &json!({"merchantID": MID, "invoiceNo": "INV-CTL", "outcome": "4081", "card": CARD_MC}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["respCode"], "4081");
    let delivered = h.recv.notification(Duration::from_secs(5)).await.unwrap();
    assert_eq!(verified_result(&delivered).resp_code.as_deref(), Some("4081"));
    let ledger: Value =
        h.http.get(h.sim.url(&format!("/control/ledger/{MID}/INV-CTL"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(ledger["status"], "3ds_fail");
    assert_eq!(ledger["amount"]["minor"], 100_000);
    assert_eq!(ledger["result"]["accountNo"], "520000XXXXXX0007");
    assert_eq!(ledger["notifications"][0]["delivered"], true);
    let (status, _) = h.post_json("/control/reset", &json!({})).await;
    assert_eq!(status, 200);
    let gone = h.http.get(h.sim.url(&format!("/control/ledger/{MID}/INV-CTL"))).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    assert!(h.sim.control().scenarios().is_empty());
    // After a reset the invoiceNo can be used again, and a reset abandons held notifications.
    h.create_invoice("INV-CTL").await;
    h.scenario(json!({"reorder": true})).await;
    let report = h.sim.control().pay(MID, "INV-CTL", Outcome::Success).await.unwrap();
    assert_eq!(report.delivery, Delivery::Held);
    h.sim.control().reset();
    assert!(h.recv.notification(Duration::from_millis(300)).await.is_none());
    h.sim.stop().await;
}
