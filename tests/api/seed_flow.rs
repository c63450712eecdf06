//! The seed flow "Payment with Customer Token" end to end: pgw-relay with pgw-sim as the gateway
//! and the real RabbitMQ, driven over HTTP exactly as a browser and 2C2P would.

use std::time::Duration;

use pgw_relay::sim::{Scenario, Scope, SimConfig, SimMerchant, SimServer};
use serde_json::{json, Value};

use crate::broker::TestBroker;
use crate::helpers::*;

pub(crate) const CARD_A: &str = "28052010234224845229";
pub(crate) const CARD_B: &str = "7305201872122484776";

/// pgw-sim, pgw-relay wired to it (return URLs from config), and a consumer on the relay's exchange.
pub struct Flow {
    pub sim: SimServer,
    pub app: TestApp,
    pub broker: TestBroker,
    pub browser: reqwest::Client,
}

impl Flow {
    pub async fn start(backend: Backend, extra_toml: &str) -> Flow {
        Flow::start_with_cards(backend, extra_toml, &[(CARD_A, "411111XXXXXX1111"), (CARD_B, "520000XXXXXX0007")]).await
    }

    /// Like [`Flow::start`], with pgw-sim's stored cards as `(customer token, accountNo it sends)`.
    pub async fn start_with_cards(backend: Backend, extra_toml: &str, cards: &[(&str, &str)]) -> Flow {
        let mut merchant = SimMerchant::new("JT01", JT01_KEY).with_timezone("+08:00");
        for (token, account_no) in cards {
            merchant = merchant.with_card(*token, *account_no);
        }
        let sim = SimServer::start(SimConfig::ephemeral(vec![merchant])).expect("pgw-sim starts");
        let exchange = test_exchange();
        let mut broker = TestBroker::new(&exchange).await;
        broker.bind().await;
        let port = free_port();
        let mut opts = Options::new(backend);
        opts.public_port = Some(port);
        opts.exchange = Some(exchange);
        opts.jt01_extra = format!(
            "backend_return_url = \"http://127.0.0.1:{port}/2c2p/backend-notification\"\n\
             frontend_return_url = \"http://127.0.0.1:{port}/2c2p/frontend-return?merchantID=JT01\"\n"
        );
        opts.extra_toml = format!("[gateway]\nbase_url = \"{}\"\ntimeout = \"5s\"\n{extra_toml}", sim.base_url());
        let app = spawn_app(opts).await;
        let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Flow { sim, app, broker, browser }
    }

    /// `POST /v1/payment-tokens` with the seed page's request.
    pub async fn create_token(&self, invoice: &str, customer_tokens: Value) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}/v1/payment-tokens", self.app.internal))
            .bearer_auth(API_TOKEN)
            .json(&json!({
                "merchantID": "JT01",
                "invoiceNo": invoice,
                "description": "item 1",
                "amount": 1000.00,
                "currencyCode": "SGD",
                "customerToken": customer_tokens,
            }))
            .send()
            .await
            .unwrap()
    }

    /// Creates a payment token for `invoice` offering the stored `card`; its `webPaymentUrl`.
    pub async fn web_payment_url(&self, invoice: &str, card: &str) -> String {
        let res = self.create_token(invoice, json!([card])).await;
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["webPaymentUrl"].as_str().unwrap().to_string()
    }

    /// Sets how pgw-sim treats `invoice` of JT01.
    pub fn scenario(&self, invoice: &str, scenario: Scenario) {
        self.sim.control().set_scenario(Scope::invoice("JT01", invoice), scenario);
    }

    /// Chooses an outcome on the payment page; returns the page's JSON report.
    pub async fn pay(&self, web_payment_url: &str, outcome: &str, card: &str) -> Value {
        let res = self
            .browser
            .post(web_payment_url)
            .header("accept", "application/json")
            .form(&[("outcome", outcome), ("card", card)])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "payment page answered {}", res.status());
        res.json().await.unwrap()
    }

    /// The browser posts `paymentResponse` back; returns the relay's redirect target.
    pub async fn browser_returns(&self, report: &Value) -> url::Url {
        let res = self
            .browser
            .post(report["frontendReturnUrl"].as_str().unwrap())
            .form(&[("paymentResponse", report["paymentResponse"].as_str().unwrap())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
    }

    pub async fn stop(self) {
        self.app.stop().await;
        self.broker.cleanup(&[]).await;
        self.sim.stop().await;
    }
}

fn status_of(target: &url::Url) -> String {
    target.query_pairs().find(|(k, _)| k == "status").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[tokio::test]
async fn every_outcome_of_the_seed_flow_lands_with_one_trusted_event() {
    let mut flow = Flow::start(Backend::Sqlite, "").await;
    let cases = [
        ("success", CARD_A, "payment.succeeded", "succeeded", "0000"),
        ("decline", CARD_B, "payment.failed", "failed", "4005"),
        ("cancel", CARD_A, "payment.cancelled", "cancelled", "0003"),
        ("pending", CARD_A, "payment.pending", "pending", "0001"),
        ("3ds_fail", CARD_B, "payment.failed", "failed", "4081"),
    ];
    for (outcome, card, event_type, status, code) in cases {
        let inv = invoice_no();
        // Steps 1-3: create the token with two stored cards; respCode checked by the relay.
        let res = flow.create_token(&inv, json!([CARD_A, CARD_B])).await;
        assert_eq!(res.status(), 201, "{outcome}");
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["merchantID"], "JT01");
        assert_eq!(created["invoiceNo"], inv);
        assert!(created["paymentToken"].as_str().is_some_and(|t| !t.is_empty()));
        let web_payment_url = created["webPaymentUrl"].as_str().unwrap().to_string();
        assert_eq!(flow.app.invoice("JT01", &inv).await["status"], "pending", "registered for reconciliation");

        // Step 4: the payment page lists the stored cards.
        let page = flow.browser.get(&web_payment_url).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("411111XXXXXX1111") && page.contains("520000XXXXXX0007"), "{outcome}: {page}");

        // Steps 5-6: backend notification (delivered before the page answers) and browser return.
        let report = flow.pay(&web_payment_url, outcome, card).await;
        assert_eq!(report["notification"]["delivered"], true, "{outcome}: {report}");
        assert_eq!(report["notification"]["status"], 200);
        let target = flow.browser_returns(&report).await;
        assert_eq!(target.host_str(), Some("shop.example"));
        assert_eq!(status_of(&target), status, "{outcome}");

        // Exactly one event of the right type, with the gateway's facts.
        let messages = flow.broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(300)).await;
        let event = &messages[0].body;
        assert_eq!(event["type"], event_type, "{outcome}");
        assert_eq!(event["subject"], inv);
        let data = &event["data"];
        assert_eq!(data["status"], status);
        assert_eq!(data["respCode"], code);
        assert_eq!(data["source"], "backend_notification");
        assert_eq!(data["amount"], json!({"minor": 100000, "currency": "SGD", "exponent": 2, "value": "1000.00"}));
        assert_eq!(data["customerToken"], card);
        assert!(data["maskedPan"].as_str().unwrap().contains("XXXXXX"));
        assert_eq!(data["sequence"], 1);
    }
    flow.stop().await;
}

#[tokio::test]
async fn the_return_may_arrive_before_the_notification() {
    let mut flow = Flow::start(Backend::Postgres, "").await;
    let inv = invoice_no();
    flow.scenario(&inv, Scenario { reorder: true, ..Scenario::default() });
    let url = flow.web_payment_url(&inv, CARD_A).await;
    let report = flow.pay(&url, "success", CARD_A).await;
    assert_eq!(report["notification"]["delivery"], "held");
    // The browser is back first: its 2000 is not a payment result, but the inquiry it starts
    // learns the signed result, so the customer sees it.
    assert_eq!(status_of(&flow.browser_returns(&report).await), "succeeded");
    let messages = flow.broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(300)).await;
    assert_eq!(messages[0].body["type"], "payment.succeeded");
    assert_eq!(messages[0].body["data"]["source"], "inquiry");
    // Then the notification arrives: the same fact, so no second event.
    assert_eq!(flow.sim.control().release("JT01", &inv), 1);
    assert!(flow.broker.next(Duration::from_millis(800)).await.is_none(), "one event per fact");
    assert!(flow.app.invoice("JT01", &inv).await["notifiedAt"].is_string(), "the notification is stored");
    assert_eq!(status_of(&flow.browser_returns(&report).await), "succeeded");
    flow.stop().await;
}

#[tokio::test]
async fn a_duplicated_notification_publishes_one_event() {
    let mut flow = Flow::start(Backend::Sqlite, "").await;
    let inv = invoice_no();
    flow.scenario(&inv, Scenario { duplicate: true, ..Scenario::default() });
    let url = flow.web_payment_url(&inv, CARD_A).await;
    flow.pay(&url, "success", CARD_A).await;
    let messages = flow.broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(800)).await;
    assert_eq!(messages[0].body["type"], "payment.succeeded");
    flow.stop().await;
}

#[tokio::test]
async fn without_the_notification_the_return_alone_never_makes_it_succeeded() {
    // Reconciliation off: only the browser speaks.
    let mut flow = Flow::start(Backend::Sqlite, "[reconcile]\nenabled = false\n").await;
    let inv = invoice_no();
    flow.scenario(&inv, Scenario { drop: true, ..Scenario::default() });
    let url = flow.web_payment_url(&inv, CARD_A).await;
    let report = flow.pay(&url, "success", CARD_A).await;
    assert_eq!(report["notification"]["delivery"], "dropped");
    for _ in 0..3 {
        assert_eq!(status_of(&flow.browser_returns(&report).await), "pending");
    }
    assert_eq!(flow.app.invoice("JT01", &inv).await["status"], "pending");
    assert!(flow.broker.next(Duration::from_millis(500)).await.is_none());
    flow.stop().await;
}

#[tokio::test]
async fn a_wrong_signature_from_the_gateway_is_never_trusted() {
    let mut flow = Flow::start(Backend::Sqlite, "").await;
    let inv = invoice_no();
    flow.sim.control().set_scenario(Scope::merchant("JT01"), Scenario { wrong_signature: true, ..Scenario::default() });
    // A token answer signed with another key is an error, and nothing is registered.
    let res = flow.create_token(&inv, json!([CARD_A])).await;
    assert_eq!(res.status(), 502);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "gateway_bad_signature");
    assert_eq!(flow.app.get_invoice("JT01", &inv).await.status(), 404);
    // A notification signed with another key is rejected (the simulator sees 401).
    let inv = invoice_no();
    flow.sim.control().set_scenario(Scope::merchant("JT01"), Scenario::default());
    let url = flow.web_payment_url(&inv, CARD_A).await;
    flow.sim.control().set_scenario(Scope::merchant("JT01"), Scenario { wrong_signature: true, ..Scenario::default() });
    let report = flow.pay(&url, "success", CARD_A).await;
    assert_eq!(report["notification"]["status"], 401);
    assert_eq!(flow.app.invoice("JT01", &inv).await["status"], "pending");
    assert!(flow.broker.next(Duration::from_millis(300)).await.is_none());
    flow.stop().await;
}

#[tokio::test]
async fn gateway_request_errors_are_surfaced_with_their_code() {
    let flow = Flow::start(Backend::Sqlite, "").await;
    let inv = invoice_no();
    assert_eq!(flow.create_token(&inv, json!([CARD_A])).await.status(), 201);
    // 9015: the invoice number was used already.
    let res = flow.create_token(&inv, json!([CARD_A])).await;
    assert_eq!(res.status(), 502);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "gateway_rejected");
    assert_eq!(err["respCode"], "9015");
    // 9202: a customer token the gateway does not know.
    let res = flow.create_token(&invoice_no(), json!(["not-a-stored-card"])).await;
    assert_eq!(res.status(), 502);
    assert_eq!(res.json::<Value>().await.unwrap()["respCode"], "9202");
    flow.stop().await;
}
