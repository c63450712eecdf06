//! OpenTelemetry as an operator turns it on: the real binary exports its spans over OTLP/HTTP to
//! a collector running in this test process, writes their ids in its JSON logs, and puts the W3C
//! `traceparent` of the notification (or inquiry) on the AMQP message of the event it caused.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use pgw_relay::sim::{Outcome, Scenario, Scope, SimConfig, SimMerchant, SimServer};
use prost::Message as _;
use serde_json::{json, Value};

use crate::broker::{Message, TestBroker};
use crate::helpers::*;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    name: String,
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    /// `(trace id, span id)` of each link.
    links: Vec<(String, String)>,
    attributes: HashMap<String, String>,
}

/// A minimal OTLP/HTTP collector: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
struct Collector {
    base_url: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Export requests whose body was not a valid OTLP protobuf message.
    rejected: Arc<Mutex<u32>>,
    handle: ServerHandle,
}

impl Collector {
    fn start() -> Collector {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let rejected = Arc::new(Mutex::new(0));
        let (sink, bad) = (spans.clone(), rejected.clone());
        let (base_url, handle) = serve_on_thread(move |req: HttpRequest, body: web::Bytes| {
            let (sink, bad) = (sink.clone(), bad.clone());
            async move {
                if req.method() != Method::POST || req.path() != "/v1/traces" {
                    return HttpResponse::NotFound().finish();
                }
                match ExportTraceServiceRequest::decode(body.as_ref()) {
                    Ok(request) => {
                        sink.lock().unwrap().extend(flatten(request));
                        HttpResponse::Ok().content_type("application/x-protobuf").finish()
                    }
                    Err(_) => {
                        *bad.lock().unwrap() += 1;
                        HttpResponse::BadRequest().finish()
                    }
                }
            }
        });
        Collector { base_url, spans, rejected, handle }
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(ReceivedSpan {
                    name: span.name,
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    links: span.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                    attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?)?)))
                        .collect(),
                });
            }
        }
    }
    out
}

fn text(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `(trace id, parent span id)` of a message's `traceparent` header.
fn traceparent(message: &Message) -> (String, String) {
    let headers = message.properties.headers().as_ref().expect("the message has application headers");
    let value = headers.inner().get("traceparent").expect("a traceparent header");
    let text = match value {
        lapin::types::AMQPValue::LongString(s) => s.to_string(),
        other => panic!("traceparent is {other:?}"),
    };
    let parts: Vec<&str> = text.split('-').collect();
    assert_eq!(parts.len(), 4, "W3C traceparent: {text}");
    assert_eq!((parts[0], parts[3]), ("00", "01"), "version 00, sampled: {text}");
    (parts[1].to_string(), parts[2].to_string())
}

#[tokio::test]
async fn spans_reach_the_collector_logs_carry_their_ids_and_consumers_continue_the_trace() {
    let collector = Collector::start();
    let sim = SimServer::start(SimConfig::ephemeral(vec![SimMerchant::new("JT01", JT01_KEY).with_timezone("+08:00")]))
        .expect("pgw-sim starts");
    let exchange = test_exchange();
    let mut broker = TestBroker::new(&exchange).await;
    broker.bind().await;

    let dir = tempfile::tempdir().unwrap();
    // The merchant's return URLs name the public listener, whose port is chosen at start: the
    // sim only needs them to be well formed for the payment token, not to reach them.
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
shutdown_timeout = "10s"
[log]
format = "json"
filter = "info,lapin=error"
[database]
url = "sqlite://{db}"
[broker]
url = "{amqp}"
exchange = "{exchange}"
default_queue = ""
poll_interval = "100ms"
[gateway]
base_url = "{gateway}"
timeout = "5s"
[reconcile]
enabled = true
[internal_api]
tokens = ["{API_TOKEN}"]
[telemetry]
otlp_endpoint = "{collector}"
sample_ratio = 1.0
service_name = "pgw-relay-traced"
[[merchants]]
id = "JT01"
secret_key = "{JT01_KEY}"
timezone = "+08:00"
backend_return_url = "http://127.0.0.1:9/2c2p/backend-notification"
frontend_return_url = "http://127.0.0.1:9/2c2p/frontend-return?merchantID=JT01"
"#,
            db = dir.path().join("relay.db").display(),
            amqp = amqp_url(),
            gateway = sim.base_url(),
            collector = collector.base_url,
        ),
    )
    .unwrap();
    let relay = RelayProcess::start(&config, Stdio::piped(), "/readyz").await;
    let (public, internal) = (relay.public.clone(), relay.internal.clone());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();

    // A backend notification: its event's message continues the notification's span.
    let notified = invoice_no();
    let token = sign_jt01(&notification(&notified, "0000", json!("100.00"), "TRACE-N"));
    let res = client
        .post(format!("{public}/2c2p/backend-notification"))
        .json(&json!({ "payload": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let from_notification = broker.next(Duration::from_secs(15)).await.expect("the notification's event");
    assert_eq!(from_notification.body["data"]["invoiceNo"], notified.as_str());
    let (n_trace, n_span) = traceparent(&from_notification);

    // An invoice whose notification never comes, settled by an inquiry: its message continues
    // the inquiry's span.
    let inquired = invoice_no();
    let res = client
        .post(format!("{internal}/v1/payment-tokens"))
        .bearer_auth(API_TOKEN)
        .json(&json!({
            "merchantID": "JT01", "invoiceNo": inquired, "description": "item 1",
            "amount": 25.5, "currencyCode": "SGD",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
    sim.control().set_scenario(Scope::invoice("JT01", &inquired), Scenario { drop: true, ..Scenario::default() });
    sim.control().pay("JT01", &inquired, Outcome::Success).await.expect("paid at the gateway");
    let res = client
        .post(format!("{internal}/v1/invoices/JT01/{inquired}/reconcile"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    let from_inquiry = loop {
        let m = broker.next(Duration::from_secs(15)).await.expect("the inquiry's event");
        if m.body["data"]["invoiceNo"] == inquired.as_str() && m.routing_key == "payment.succeeded" {
            break m;
        }
    };
    assert_eq!(from_inquiry.body["data"]["source"], "inquiry");
    let (i_trace, i_span) = traceparent(&from_inquiry);
    assert_ne!(i_trace, n_trace, "the inquiry is a trace of its own");

    // SIGTERM: the spans still buffered are exported before the process ends.
    let output = relay.terminate().await;
    assert!(output.0.success(), "pgw-relay exited with {:?}", output.0);

    let spans = collector.spans();
    assert_eq!(*collector.rejected.lock().unwrap(), 0, "every export was valid OTLP protobuf");
    let find = |trace: &str, span: &str| spans.iter().find(|s| s.trace_id == trace && s.span_id == span).cloned();
    let notification_span =
        find(&n_trace, &n_span).unwrap_or_else(|| panic!("no span {n_trace}/{n_span} in {spans:#?}"));
    assert_eq!(notification_span.name, "notification");
    assert_eq!(notification_span.service, "pgw-relay-traced");
    assert_eq!(notification_span.attributes.get("invoice"), Some(&notified));
    assert_eq!(notification_span.attributes.get("outcome").map(String::as_str), Some("accepted"));
    let request_span = find(&n_trace, &notification_span.parent_span_id).expect("the notification's parent span");
    assert_eq!(request_span.name, "HTTP request", "the notification span is a child of its request's span");
    assert_eq!(request_span.attributes.get("http.route").map(String::as_str), Some("/2c2p/backend-notification"));

    let inquiry_span = find(&i_trace, &i_span).unwrap_or_else(|| panic!("no span {i_trace}/{i_span}"));
    assert_eq!(inquiry_span.name, "inquiry");
    assert_eq!(inquiry_span.attributes.get("invoice"), Some(&inquired));
    assert_eq!(inquiry_span.attributes.get("result").map(String::as_str), Some("succeeded"));

    let batch = spans
        .iter()
        .find(|s| s.name == "publish_batch" && s.links.contains(&(n_trace.clone(), n_span.clone())))
        .unwrap_or_else(|| panic!("no publish_batch span linked to the notification in {spans:#?}"));
    assert!(batch.attributes.get("published").is_some_and(|n| n != "0"), "{batch:?}");

    // The JSON log line written inside the notification's span names its trace and span.
    let logs: Vec<Value> = output.1.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let stored = logs
        .iter()
        .find(|l| l["message"] == "backend notification stored" && l["invoice"] == notified.as_str())
        .unwrap_or_else(|| panic!("no log line for the notification in {}", output.1));
    assert_eq!(stored["trace_id"], n_trace.as_str(), "{stored}");
    assert_eq!(stored["span_id"], n_span.as_str(), "{stored}");
    let recorded = logs
        .iter()
        .find(|l| l["message"] == "inquiry recorded" && l["invoice"] == inquired.as_str())
        .expect("a log line for the inquiry");
    assert_eq!(recorded["trace_id"], i_trace.as_str(), "{recorded}");

    broker.cleanup(&[]).await;
    sim.stop().await;
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced_and_messages_carry_no_trace_context() {
    let exchange = test_exchange();
    let mut broker = TestBroker::new(&exchange).await;
    broker.bind().await;
    let mut opts = Options::new(Backend::Sqlite);
    opts.exchange = Some(exchange);
    let app = spawn_app(opts).await;
    let inv = invoice_no();
    let res = app.post_notification(&sign_jt01(&notification(&inv, "0000", json!("100.00"), "UNTRACED"))).await;
    assert_eq!(res.status(), 200);
    let message = broker.next(Duration::from_secs(15)).await.expect("the event");
    let has_trace = message.properties.headers().as_ref().is_some_and(|h| h.inner().contains_key("traceparent"));
    assert!(!has_trace, "no traceparent while tracing is off");
    app.stop().await;
    broker.cleanup(&[]).await;
}
