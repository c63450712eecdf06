//! Payment events: deterministic ids and the CloudEvents 1.0 structured-JSON body. The wire format
//! is described in `docs/events.md`; the JSON Schema of each type's `data` is
//! `docs/schemas/events/<type>.v<DATA_VERSION>.json`, named by the event's `dataschema`.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::clock::rfc3339_ms;
use crate::domain::money::Money;
use crate::domain::observation::Observation;
use crate::domain::state::{AnomalyReason, EventType, Status};

/// Namespace of the v5 event ids (a fixed random UUID; never change it).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a0b_5b1e_93f4_4c1d_9f2e_0c7d_51a4_8e21);

/// The version of the `data` schemas. Raised only for an incompatible change (docs/events.md,
/// "Versioning"); adding an optional field keeps it.
pub const DATA_VERSION: u32 = 1;

/// The `dataschema` of an event of this type: `urn:pgw-relay:schema:<type>.v<version>`, the `$id`
/// of `docs/schemas/events/<type>.v<version>.json`.
pub fn data_schema(event_type: EventType) -> String {
    format!("urn:pgw-relay:schema:{}.v{DATA_VERSION}", event_type.as_str())
}

/// The deterministic id of an event: the same fact learned twice (notification and inquiry) gives
/// the same id. `fact` is the gateway transaction reference, plus the reason for anomalies.
pub fn event_id(merchant_id: &str, invoice_no: &str, event_type: EventType, fact: &str) -> Uuid {
    let name = format!("{merchant_id}\u{1f}{invoice_no}\u{1f}{}\u{1f}{fact}", event_type.as_str());
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

/// An event ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: EventType,
    pub merchant_id: String,
    pub invoice_no: String,
    pub sequence: i64,
    /// The CloudEvent, serialised once; replays send these exact bytes.
    pub body: String,
    pub created_at_ms: i64,
    /// The W3C `traceparent` of the operation that observed the fact (see
    /// [`Observation::traceparent`]); sent as the AMQP message's header, never part of the body.
    pub traceparent: Option<String>,
}

/// What an event says about the invoice.
pub struct EventFacts<'a> {
    pub merchant_id: &'a str,
    pub invoice_no: &'a str,
    pub event_type: EventType,
    pub status: Status,
    pub previous_status: Option<Status>,
    pub sequence: i64,
    /// The invoice's amount (the observation's, else the registered one).
    pub amount: Option<&'a Money>,
    pub observation: Option<&'a Observation>,
    pub reason: Option<AnomalyReason>,
    /// Which source caused it when there is no observation (expiry by reconciliation).
    pub source: &'a str,
    pub now_ms: i64,
}

/// Builds the event for `facts`.
pub fn build(facts: &EventFacts<'_>) -> NewEvent {
    let obs = facts.observation;
    let tran_ref = obs.and_then(|o| o.tran_ref.as_deref()).unwrap_or("");
    let fact = match (facts.reason, obs) {
        (Some(r), Some(o)) => format!("{tran_ref}\u{1f}{}\u{1f}{}", r.as_str(), o.resp_code),
        (Some(r), None) => format!("{tran_ref}\u{1f}{}", r.as_str()),
        _ => tran_ref.to_string(),
    };
    let id = event_id(facts.merchant_id, facts.invoice_no, facts.event_type, &fact);
    let time = rfc3339_ms(facts.now_ms);

    let mut data = Map::new();
    data.insert("merchantID".into(), json!(facts.merchant_id));
    data.insert("invoiceNo".into(), json!(facts.invoice_no));
    data.insert("status".into(), json!(facts.status.as_str()));
    data.insert("previousStatus".into(), json!(facts.previous_status.map(Status::as_str)));
    data.insert("sequence".into(), json!(facts.sequence));
    data.insert("amount".into(), facts.amount.map(Money::to_json).unwrap_or(Value::Null));
    if let Some(r) = facts.reason {
        data.insert("reason".into(), json!(r.as_str()));
    }
    data.insert("source".into(), json!(obs.map(|o| o.source.as_str()).unwrap_or(facts.source)));
    if let Some(o) = obs {
        data.insert("respCode".into(), json!(o.resp_code));
        data.insert("respDesc".into(), json!(o.resp_desc));
        data.insert("tranRef".into(), json!(o.tran_ref));
        data.insert("referenceNo".into(), json!(o.reference_no));
        data.insert("approvalCode".into(), json!(o.approval_code));
        data.insert("eci".into(), json!(o.eci));
        data.insert("channelCode".into(), json!(o.channel_code));
        data.insert("maskedPan".into(), json!(o.masked_pan.as_ref().map(|p| p.as_str())));
        data.insert("customerToken".into(), json!(o.customer_token));
        data.insert("transactionTime".into(), json!(o.transaction_time));
        data.insert("receivedAt".into(), json!(rfc3339_ms(o.received_at_ms)));
        for (i, value) in o.user_defined.iter().enumerate() {
            if let Some(v) = value {
                data.insert(format!("userDefined{}", i + 1), json!(v));
            }
        }
    } else {
        data.insert("receivedAt".into(), json!(time));
    }

    let body = json!({
        "specversion": "1.0",
        "id": id.to_string(),
        "source": format!("pgw-relay/{}", facts.merchant_id),
        "type": facts.event_type.as_str(),
        "subject": facts.invoice_no,
        "time": time,
        "datacontenttype": "application/json",
        "dataschema": data_schema(facts.event_type),
        "data": Value::Object(data),
    });
    NewEvent {
        id,
        event_type: facts.event_type,
        merchant_id: facts.merchant_id.to_string(),
        invoice_no: facts.invoice_no.to_string(),
        sequence: facts.sequence,
        body: body.to_string(),
        created_at_ms: facts.now_ms,
        traceparent: obs.and_then(|o| o.traceparent.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct_per_fact() {
        let a = event_id("JT01", "INV1", EventType::Succeeded, "123");
        assert_eq!(a, event_id("JT01", "INV1", EventType::Succeeded, "123"));
        assert_ne!(a, event_id("JT01", "INV1", EventType::Failed, "123"));
        assert_ne!(a, event_id("JT01", "INV2", EventType::Succeeded, "123"));
        assert_ne!(a, event_id("JT02", "INV1", EventType::Succeeded, "123"));
        assert_ne!(a, event_id("JT01", "INV1", EventType::Succeeded, "124"));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn the_body_is_a_cloudevent_without_invented_fields() {
        let amount = Money::from_stored(23087, "THB", 2).unwrap();
        let ev = build(&EventFacts {
            merchant_id: "JT01",
            invoice_no: "INV1",
            event_type: EventType::Expired,
            status: Status::Expired,
            previous_status: Some(Status::Pending),
            sequence: 1,
            amount: Some(&amount),
            observation: None,
            reason: None,
            source: "inquiry",
            now_ms: 1_700_000_000_000,
        });
        let v: Value = serde_json::from_str(&ev.body).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], ev.id.to_string());
        assert_eq!(v["source"], "pgw-relay/JT01");
        assert_eq!(v["type"], "payment.expired");
        assert_eq!(v["subject"], "INV1");
        assert_eq!(v["time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["dataschema"], "urn:pgw-relay:schema:payment.expired.v1");
        assert_eq!(v["data"]["amount"]["value"], "230.87");
        assert_eq!(v["data"]["previousStatus"], "pending");
        assert!(v["data"].get("tranRef").is_none());
        assert!(v["data"].get("userDefined1").is_none());
    }
}
