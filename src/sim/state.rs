//! Shared simulator state behind one mutex (never held across an `.await`): the ledger, the token
//! index, scenarios and their counters, inquiry counts, held notifications and tokenized cards.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use base64::Engine;
use chrono::{Datelike, Utc};
use tokio::sync::oneshot;

use super::config::{SimCard, SimConfig, SimMerchant};
use super::control::PayError;
use super::ledger::{Delivery, DeliveryAttempt, LedgerEntry, NotificationRecord, Outcome, PaymentRecord};
use super::notify::{FirstAttempt, NotifyJob};
use super::payload::{self, RawObject};
use super::scenario::{Scenario, Scope, Spelling};
use crate::protocol::jwt;

/// `(merchantID, invoiceNo)`.
pub(crate) type InvoiceKey = (String, String);

/// The key used when a scenario asks for a wrong signature.
pub(crate) const WRONG_KEY: &str = "pgw-sim-wrong-signing-key";

/// The `respDesc` of the frontend return's flow code 2000.
pub(crate) const FLOW_2000_DESC: &str =
    "Transaction is completed, please do payment inquiry request for full payment information.";

pub(crate) struct SimState {
    pub config: SimConfig,
    /// Base URL of the payment pages, without a trailing slash.
    pub public_url: String,
    pub http: reqwest::Client,
    /// Where background work (notifications) runs: the simulator's own runtime.
    pub spawner: OnceLock<tokio::runtime::Handle>,
    next_id: AtomicU64,
    /// Bumped by `reset`: background work of an older generation stops.
    generation: AtomicU64,
    tran_base: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    invoices: HashMap<InvoiceKey, LedgerEntry>,
    tokens: HashMap<String, InvoiceKey>,
    scenarios: HashMap<Scope, Scenario>,
    inquiries: HashMap<InvoiceKey, u64>,
    held: HashMap<InvoiceKey, Vec<oneshot::Sender<()>>>,
    /// Cards stored by `tokenize: true` payments, by (merchant, token).
    tokenized: HashMap<(String, String), SimCard>,
}

/// A validated Payment Token request.
#[derive(Debug, Clone)]
pub(crate) struct TokenRequest {
    pub merchant_id: String,
    pub invoice_no: String,
    pub description: String,
    pub amount: crate::sim::ledger::SimAmount,
    pub customer_tokens: Vec<String>,
    pub backend_return_url: Option<String>,
    pub frontend_return_url: Option<String>,
    pub user_defined: [Option<String>; 5],
    pub idempotency_id: Option<String>,
    pub locale: Option<String>,
    pub tokenize: bool,
    pub payment_expiry: Option<String>,
    pub api_version: Spelling,
}

pub(crate) enum CreateError {
    /// 9015: the invoiceNo is already used for this merchant.
    ExistingInvoice,
}

/// Which card pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CardChoice {
    /// The first registered customer token, else a new card.
    Default,
    New,
    Token(String),
}

impl CardChoice {
    pub fn parse(text: Option<&str>) -> CardChoice {
        match text.map(str::trim) {
            None | Some("") => CardChoice::Default,
            Some(t) if t.eq_ignore_ascii_case("new") => CardChoice::New,
            Some(t) => CardChoice::Token(t.to_string()),
        }
    }
}

/// What settling an invoice produced.
pub(crate) struct Settled {
    pub entry: LedgerEntry,
    pub frontend_return_url: Option<String>,
    /// Base64 (standard, padded) JSON for the `paymentResponse` form field.
    pub payment_response: String,
    pub delivery: Delivery,
    pub job: Option<NotifyJob>,
    pub first_attempt: Option<oneshot::Receiver<FirstAttempt>>,
}

impl SimState {
    pub fn new(config: SimConfig, public_url: String, http: reqwest::Client) -> SimState {
        let tran_base = 1_000_000 + (Utc::now().timestamp().unsigned_abs() % 9_000_000) * 10;
        SimState {
            config,
            public_url,
            http,
            spawner: OnceLock::new(),
            next_id: AtomicU64::new(1),
            generation: AtomicU64::new(0),
            tran_base,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current reset generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn merchant(&self, id: &str) -> Option<&SimMerchant> {
        self.config.merchant(id)
    }

    /// The signing key for answers and notifications of this merchant under `scenario`.
    pub fn signing_key<'a>(&'a self, merchant: &'a SimMerchant, scenario: &Scenario) -> &'a str {
        if scenario.wrong_signature {
            WRONG_KEY
        } else {
            &merchant.secret_key
        }
    }

    // ---- scenarios ----

    /// The scenario in force for an invoice: the most specific one set.
    pub fn scenario_for(&self, merchant: &str, invoice: Option<&str>) -> Scenario {
        let inner = self.lock();
        effective(&inner, merchant, invoice).map(|s| inner.scenarios[&s].clone()).unwrap_or_default()
    }

    /// Consumes one `fail_5xx_for_n` of the effective scenario; true = answer 503.
    pub fn take_fail_5xx(&self, merchant: Option<&str>, invoice: Option<&str>) -> bool {
        let mut inner = self.lock();
        let scope = match merchant {
            Some(m) => effective(&inner, m, invoice),
            None => inner.scenarios.contains_key(&Scope::global()).then(Scope::global),
        };
        let Some(scope) = scope else { return false };
        match inner.scenarios.get_mut(&scope) {
            Some(s) if s.fail_5xx_for_n > 0 => {
                s.fail_5xx_for_n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Consumes one `pending_for_n` of the effective scenario; true = answer 0001.
    pub fn take_pending(&self, merchant: &str, invoice: &str) -> bool {
        let mut inner = self.lock();
        let Some(scope) = effective(&inner, merchant, Some(invoice)) else {
            return false;
        };
        match inner.scenarios.get_mut(&scope) {
            Some(s) if s.pending_for_n > 0 => {
                s.pending_for_n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Sets (replaces) the scenario of a scope; an all-default scenario removes it.
    pub fn set_scenario(&self, scope: Scope, scenario: Scenario) {
        let mut inner = self.lock();
        if scenario.is_default() {
            inner.scenarios.remove(&scope);
        } else {
            inner.scenarios.insert(scope, scenario);
        }
    }

    pub fn scenarios(&self) -> Vec<(Scope, Scenario)> {
        let inner = self.lock();
        let mut all: Vec<_> = inner.scenarios.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| {
            (a.0.merchant_id.as_deref(), a.0.invoice_no.as_deref())
                .cmp(&(b.0.merchant_id.as_deref(), b.0.invoice_no.as_deref()))
        });
        all
    }

    // ---- ledger ----

    /// Whether `token` is a valid customer token of `merchant` (docs/2c2p.md, "Payment Token request"): listed in the
    /// configuration, stored by an earlier `tokenize` payment, or (unless `strict_tokens`) 16 to 20
    /// digits.
    pub fn is_valid_customer_token(&self, merchant: &SimMerchant, token: &str) -> bool {
        if merchant.cards.iter().any(|c| c.token == token) {
            return true;
        }
        if self.lock().tokenized.contains_key(&(merchant.id.clone(), token.to_string())) {
            return true;
        }
        !self.config.strict_tokens && (16..=20).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_digit())
    }

    /// The card behind a customer token (pattern-accepted tokens get a derived masked PAN).
    pub fn card(&self, merchant: &SimMerchant, token: &str) -> SimCard {
        if let Some(card) = merchant.cards.iter().find(|c| c.token == token) {
            return card.clone();
        }
        if let Some(card) = self.lock().tokenized.get(&(merchant.id.clone(), token.to_string())) {
            return card.clone();
        }
        let last4: String = token.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        SimCard { token: token.to_string(), masked_pan: format!("411111XXXXXX{last4:0>4}"), expiry: None }
    }

    /// Records a new invoice and issues its payment token. The same `idempotencyID` for an invoice
    /// that has no result yet answers the existing entry again instead of 9015.
    pub fn create_invoice(&self, new: TokenRequest) -> Result<LedgerEntry, CreateError> {
        let key = (new.merchant_id.clone(), new.invoice_no.clone());
        let mut inner = self.lock();
        if let Some(existing) = inner.invoices.get(&key) {
            let replay = new.idempotency_id.is_some()
                && existing.idempotency_id == new.idempotency_id
                && existing.result.is_none()
                && existing.token_expires_at > Utc::now();
            return if replay { Ok(existing.clone()) } else { Err(CreateError::ExistingInvoice) };
        }
        let token = loop {
            let t = random_payment_token();
            if !inner.tokens.contains_key(&t) {
                break t;
            }
        };
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.config.token_ttl).unwrap_or(chrono::Duration::minutes(30));
        let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        let entry = LedgerEntry {
            merchant_id: new.merchant_id,
            invoice_no: new.invoice_no,
            description: new.description,
            amount: new.amount,
            customer_tokens: new.customer_tokens,
            backend_return_url: new.backend_return_url,
            frontend_return_url: new.frontend_return_url,
            user_defined: new.user_defined,
            idempotency_id: new.idempotency_id,
            locale: new.locale,
            tokenize: new.tokenize,
            payment_expiry: new.payment_expiry,
            payment_token: token.clone(),
            web_payment_url: format!("{}/pay/{}", self.public_url, encoded),
            token_expires_at: now + ttl,
            api_version: new.api_version,
            created_at: now,
            status: "awaiting_payment".to_string(),
            result: None,
            results: Vec::new(),
            notifications: Vec::new(),
        };
        inner.tokens.insert(token, key.clone());
        inner.invoices.insert(key, entry.clone());
        Ok(entry)
    }

    pub fn entry(&self, merchant: &str, invoice: &str) -> Option<LedgerEntry> {
        self.lock().invoices.get(&(merchant.to_string(), invoice.to_string())).cloned()
    }

    pub fn entry_by_token(&self, token: &str) -> Option<LedgerEntry> {
        let inner = self.lock();
        inner.tokens.get(token).and_then(|key| inner.invoices.get(key)).cloned()
    }

    pub fn entries(&self) -> Vec<LedgerEntry> {
        let inner = self.lock();
        let mut all: Vec<_> = inner.invoices.values().cloned().collect();
        all.sort_by_key(|e| e.created_at);
        all
    }

    /// Counts one Payment Inquiry for an invoice (known or not) and answers the new count.
    pub fn count_inquiry(&self, merchant: &str, invoice: &str) -> u64 {
        let mut inner = self.lock();
        let n = inner.inquiries.entry((merchant.to_string(), invoice.to_string())).or_insert(0);
        *n += 1;
        *n
    }

    pub fn inquiry_count(&self, merchant: &str, invoice: &str) -> u64 {
        self.lock().inquiries.get(&(merchant.to_string(), invoice.to_string())).copied().unwrap_or(0)
    }

    /// Records an outcome, prepares the backend notification and the frontend return.
    pub fn settle(
        &self,
        merchant: &SimMerchant,
        invoice: &str,
        outcome: Outcome,
        card: CardChoice,
        spelling: Option<Spelling>,
    ) -> Result<Settled, PayError> {
        let key = (merchant.id.clone(), invoice.to_string());
        let scenario = self.scenario_for(&merchant.id, Some(invoice));
        // Resolve the card outside the main lock (card() takes it).
        let snapshot = self.entry(&merchant.id, invoice).ok_or(PayError::UnknownInvoice)?;
        if snapshot.is_final() {
            return Err(PayError::AlreadyFinal);
        }
        let chosen = match card {
            CardChoice::Default => snapshot.customer_tokens.first().map(|t| self.card(merchant, t)),
            CardChoice::New => None,
            CardChoice::Token(t) => {
                if !snapshot.customer_tokens.contains(&t) {
                    return Err(PayError::CardNotOffered);
                }
                Some(self.card(merchant, &t))
            }
        };
        let seq = self.next_id();
        let mut stored = chosen;
        if stored.is_none() && snapshot.tokenize && outcome == Outcome::Success {
            stored = Some(SimCard {
                token: random_digits(20, seq),
                masked_pan: "411111XXXXXX1111".to_string(),
                expiry: Some(format!("{}1231", Utc::now().year() + 3)),
            });
        }
        let account_no = stored.as_ref().map(|c| c.masked_pan.clone()).unwrap_or_else(|| "411111XXXXXX1111".into());
        let (channel, eci, country) = scheme_of(&account_no);
        let offset =
            merchant.offset().unwrap_or_else(|| chrono::FixedOffset::east_opt(7 * 3600).expect("valid offset"));
        let now = Utc::now();
        let tran_ref = self.tran_base + seq;
        let record = PaymentRecord {
            outcome,
            resp_code: outcome.resp_code().to_string(),
            resp_desc: outcome.resp_desc().to_string(),
            tran_ref: tran_ref.to_string(),
            reference_no: (tran_ref * 3 + 7).to_string(),
            approval_code: (outcome == Outcome::Success).then(|| random_digits(6, seq)),
            transaction_date_time: now.with_timezone(&offset).format("%Y%m%d%H%M%S").to_string(),
            account_no,
            customer_token: stored.as_ref().map(|c| c.token.clone()),
            customer_token_expiry: stored.as_ref().and_then(|c| c.expiry.clone()),
            channel_code: channel.to_string(),
            eci: eci.to_string(),
            agent_code: "OCBC".to_string(),
            issuer_country: country.to_string(),
            payment_id: format!("ccpp_{tran_ref}"),
            recorded_at: now,
        };

        let mut inner = self.lock();
        if let (Some(card), Outcome::Success) = (&stored, outcome) {
            if snapshot.tokenize && !snapshot.customer_tokens.contains(&card.token) {
                inner.tokenized.insert((merchant.id.clone(), card.token.clone()), card.clone());
            }
        }
        let entry = inner.invoices.get_mut(&key).ok_or(PayError::UnknownInvoice)?;
        if entry.is_final() {
            return Err(PayError::AlreadyFinal);
        }
        entry.results.push(record.clone());
        entry.result = Some(record.clone());
        entry.status = outcome.name().to_string();

        let spelling = spelling.or(scenario.spelling).unwrap_or(entry.api_version);
        let claims = payload::result_claims(entry, &record, spelling);
        let jwt = jwt::sign(&claims, self.signing_key(merchant, &scenario));
        let body = serde_json::json!({ "payload": jwt }).to_string();
        let url = entry.backend_return_url.clone();
        let delivery = match (&url, &scenario) {
            (None, _) => Delivery::NoUrl,
            (_, s) if s.drop => Delivery::Dropped,
            (_, s) if s.reorder => Delivery::Held,
            (_, s) if s.delay_ms > 0 => Delivery::Delayed,
            _ => Delivery::Immediate,
        };
        let copies =
            if scenario.duplicate && matches!(delivery, Delivery::Immediate | Delivery::Delayed | Delivery::Held) {
                2
            } else {
                1
            };
        let mut ids = Vec::new();
        for _ in 0..copies {
            let id = self.next_id();
            ids.push(id);
            entry.notifications.push(NotificationRecord {
                id,
                resp_code: record.resp_code.clone(),
                spelling,
                wrong_signature: scenario.wrong_signature,
                delivery,
                url: url.clone(),
                payload: jwt.clone(),
                attempts: Vec::new(),
                delivered: false,
                finished: !matches!(delivery, Delivery::Immediate | Delivery::Delayed | Delivery::Held),
            });
        }
        let frontend_return_url = entry.frontend_return_url.clone();
        let payment_response = frontend_payment_response(entry);
        let snapshot = entry.clone();

        let hold = if delivery == Delivery::Held {
            let (tx, rx) = oneshot::channel();
            inner.held.entry(key.clone()).or_default().push(tx);
            Some(rx)
        } else {
            None
        };
        drop(inner);

        let (job, first_attempt) = match (url, delivery) {
            (Some(url), Delivery::Immediate | Delivery::Delayed | Delivery::Held) => {
                let (tx, rx) = oneshot::channel();
                let job = NotifyJob {
                    generation: self.generation(),
                    key,
                    ids,
                    url,
                    body,
                    delay: std::time::Duration::from_millis(scenario.delay_ms),
                    hold,
                    first: Some(tx),
                };
                (Some(job), Some(rx))
            }
            _ => (None, None),
        };
        Ok(Settled { entry: snapshot, frontend_return_url, payment_response, delivery, job, first_attempt })
    }

    /// Records one delivery attempt of notification `id`.
    pub fn record_attempt(&self, key: &InvoiceKey, id: u64, attempt: DeliveryAttempt, delivered: bool, finished: bool) {
        let mut inner = self.lock();
        let Some(entry) = inner.invoices.get_mut(key) else {
            return;
        };
        if let Some(n) = entry.notifications.iter_mut().find(|n| n.id == id) {
            n.attempts.push(attempt);
            n.delivered |= delivered;
            n.finished = finished;
        }
    }

    /// Releases the notifications held by `reorder` for an invoice; answers how many.
    pub fn release(&self, merchant: &str, invoice: &str) -> usize {
        let senders = self.lock().held.remove(&(merchant.to_string(), invoice.to_string())).unwrap_or_default();
        let n = senders.len();
        for tx in senders {
            let _ = tx.send(());
        }
        n
    }

    /// Forgets every invoice, token, scenario, count and tokenized card; notifications not sent
    /// yet (held, delayed, retrying) are abandoned.
    pub fn reset(&self) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        *inner = Inner::default();
    }
}

/// The most specific scope with a scenario set for this invoice.
fn effective(inner: &Inner, merchant: &str, invoice: Option<&str>) -> Option<Scope> {
    Scope::candidates(merchant, invoice).into_iter().find(|s| inner.scenarios.contains_key(s))
}

/// `(channelCode, eci, issuerCountry)` for a masked PAN: Mastercard ranges answer `MA`/`02`,
/// everything else Visa `VI`/`05`.
fn scheme_of(masked_pan: &str) -> (&'static str, &'static str, &'static str) {
    match masked_pan.as_bytes().first() {
        Some(b'5') | Some(b'2') => ("MA", "02", "SG"),
        _ => ("VI", "05", "SG"),
    }
}

/// The frontend return's `paymentResponse`: standard padded base64 of the flow-2000 JSON.
pub(crate) fn frontend_payment_response(entry: &LedgerEntry) -> String {
    let mut o = RawObject::new();
    o.opt_str("locale", entry.locale.as_deref())
        .str("invoiceNo", &entry.invoice_no)
        .str("channelCode", "CC")
        .str("respCode", "2000")
        .str("respDesc", FLOW_2000_DESC);
    base64::engine::general_purpose::STANDARD.encode(o.to_json())
}

/// Pseudo-random bytes: SipHash under per-process random keys.
fn random_bytes(n: usize, salt: u64) -> Vec<u8> {
    let seed = uuid::Uuid::now_v7().as_u128();
    let state = RandomState::new();
    let mut out = Vec::with_capacity(n + 8);
    let mut i = 0u64;
    while out.len() < n {
        let mut h = state.build_hasher();
        h.write_u128(seed);
        h.write_u64(salt);
        h.write_u64(i);
        out.extend_from_slice(&h.finish().to_le_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

fn random_digits(n: usize, salt: u64) -> String {
    random_bytes(n, salt).into_iter().map(|b| char::from(b'0' + b % 10)).collect()
}

/// A payment token like 2C2P's: standard base64 of random bytes, with `+`, `/` and `=` in it.
pub(crate) fn random_payment_token() -> String {
    let mut salt = 0u64;
    loop {
        let t = base64::engine::general_purpose::STANDARD.encode(random_bytes(88, salt));
        if t.contains('+') && t.contains('/') && t.ends_with('=') {
            return t;
        }
        salt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_payment_tokens_are_standard_base64_with_special_characters() {
        let a = random_payment_token();
        let b = random_payment_token();
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert!(t.contains('+') && t.contains('/') && t.ends_with('='), "{t}");
            assert_eq!(base64::engine::general_purpose::STANDARD.decode(t).unwrap().len(), 88);
        }
        let d = random_digits(20, 1);
        assert_eq!(d.len(), 20);
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn sim_schemes_follow_the_pan() {
        assert_eq!(scheme_of("411111XXXXXX1111").0, "VI");
        assert_eq!(scheme_of("520000XXXXXX0007"), ("MA", "02", "SG"));
    }
}
