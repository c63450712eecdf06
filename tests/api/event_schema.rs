//! The published event documents are the truth the suite holds events to: every event a test
//! consumes from RabbitMQ or reads from a store is validated against
//! `docs/schemas/events/cloudevent.v1.json` and the `data` schema its `dataschema` names, and every
//! message's AMQP properties against docs/events.md. The schemas are made strict for the check
//! (no undeclared property), so a field added to the code but not to the schema fails here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

const EVENT_TYPES: [&str; 6] = [
    "payment.pending",
    "payment.succeeded",
    "payment.failed",
    "payment.cancelled",
    "payment.expired",
    "payment.anomaly",
];

struct Schemas {
    envelope: Validator,
    /// By `$id` (the `dataschema` value).
    data: HashMap<String, Validator>,
}

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas/events")
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every object schema that declares `properties` and says nothing about others gets
/// `additionalProperties: false`.
fn strict(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

fn compile(mut schema: Value) -> Validator {
    jsonschema::draft202012::meta::validate(&schema).expect("the schema is valid Draft 2020-12");
    strict(&mut schema);
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).expect("schema compiles")
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let envelope = compile(read(&schema_dir().join("cloudevent.v1.json")));
        let mut data = HashMap::new();
        for t in EVENT_TYPES {
            let schema = read(&schema_dir().join(format!("{t}.v1.json")));
            let id = schema["$id"].as_str().expect("$id").to_string();
            assert_eq!(id, format!("urn:pgw-relay:schema:{t}.v1"), "{t}: $id");
            data.insert(id, compile(schema));
        }
        Schemas { envelope, data }
    })
}

fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// Panics unless `event` (a CloudEvent body) conforms to the envelope and to its `data` schema.
pub fn assert_valid_event(event: &Value) {
    let s = schemas();
    let problems = errors(&s.envelope, event);
    assert!(problems.is_empty(), "event does not match cloudevent.v1.json: {problems:?}\n{event}");
    let event_type = event["type"].as_str().unwrap_or_default();
    let dataschema = event["dataschema"].as_str().unwrap_or_default();
    assert_eq!(dataschema, format!("urn:pgw-relay:schema:{event_type}.v1"), "dataschema names the type's schema");
    let validator = s.data.get(dataschema).unwrap_or_else(|| panic!("no schema {dataschema}"));
    let problems = errors(validator, &event["data"]);
    assert!(problems.is_empty(), "data does not match {dataschema}: {problems:?}\n{event}");
    assert_eq!(event["subject"], event["data"]["invoiceNo"], "subject is the invoiceNo");
    assert_eq!(event["source"], format!("pgw-relay/{}", event["data"]["merchantID"].as_str().unwrap_or_default()));
}

/// [`assert_valid_event`] on a stored body.
pub fn assert_valid_event_text(body: &str) {
    let event: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("stored event is not JSON: {e}"));
    assert_valid_event(&event);
}

/// Panics unless a delivered message has the documented AMQP properties and a valid body.
pub fn assert_valid_message(routing_key: &str, properties: &lapin::BasicProperties, event: &Value) {
    assert_valid_event(event);
    let text = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.to_string());
    assert_eq!(text(properties.message_id()).as_deref(), event["id"].as_str(), "message_id is the event id");
    assert_eq!(text(properties.kind()).as_deref(), event["type"].as_str(), "AMQP type is the event type");
    assert_eq!(Some(routing_key), event["type"].as_str(), "routing key is the event type");
    assert_eq!(text(properties.content_type()).as_deref(), Some("application/cloudevents+json"));
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    assert!(properties.timestamp().is_some_and(|t| t > 0), "timestamp set");
}

/// Validates every event stored in the database at `url` (SQLite or PostgreSQL); how many.
pub async fn assert_stored_events_valid(url: &str) -> usize {
    use sqlx::Connection;
    const QUERY: &str = "SELECT body FROM events";
    // A database that cannot be opened (a test of storage failure) or has no events table (not
    // migrated) holds no event.
    let bodies: Vec<String> = if url.starts_with("sqlite:") {
        match sqlx::SqliteConnection::connect(url).await {
            Ok(mut c) => sqlx::query_scalar(QUERY).fetch_all(&mut c).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    } else {
        match sqlx::PgConnection::connect(url).await {
            Ok(mut c) => sqlx::query_scalar(QUERY).fetch_all(&mut c).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    };
    bodies.iter().for_each(|b| assert_valid_event_text(b));
    bodies.len()
}

#[test]
fn the_schemas_reject_what_they_must() {
    let good = serde_json::json!({
        "specversion": "1.0", "id": "62256afe-5e42-5ab3-87bd-19107d04dd6e", "source": "pgw-relay/JT01",
        "type": "payment.succeeded", "subject": "INV1", "time": "2026-11-27T04:05:45.113Z",
        "datacontenttype": "application/json", "dataschema": "urn:pgw-relay:schema:payment.succeeded.v1",
        "data": {"merchantID": "JT01", "invoiceNo": "INV1", "status": "succeeded", "previousStatus": "pending",
                 "sequence": 1, "amount": {"minor": 100000, "currency": "SGD", "exponent": 2, "value": "1000.00"},
                 "respCode": "0000", "source": "backend_notification", "receivedAt": "2026-11-27T04:05:45.113Z"}
    });
    assert_valid_event(&good);
    let s = schemas();
    let data_validator = &s.data["urn:pgw-relay:schema:payment.succeeded.v1"];
    for (field, bad) in [
        ("amount", serde_json::json!({"minor": 1000.5, "currency": "SGD", "exponent": 2, "value": "10.005"})),
        ("status", serde_json::json!("failed")),
        ("sequence", serde_json::json!(0)),
        ("respCode", serde_json::json!("0")),
        ("undocumented", serde_json::json!(1)),
    ] {
        let mut data = good["data"].clone();
        data[field] = bad;
        assert!(!data_validator.is_valid(&data), "{field} should be rejected");
    }
    let mut event = good.clone();
    event["time"] = serde_json::json!("yesterday");
    assert!(!s.envelope.is_valid(&event), "a time that is not RFC 3339");
}
