//! The `pgw-relay` binary as an operator runs it: crash with `kill -9` while accepting, restart,
//! and graceful SIGTERM. Nothing that got a `200` may be lost.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::broker::TestBroker;
use crate::helpers::*;

struct Relay {
    child: Child,
    public: String,
    internal: String,
}

/// Starts the binary with a config file; waits until `/readyz` answers.
async fn start_relay(config: &std::path::Path) -> Relay {
    let (public_port, internal_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_pgw-relay"))
        .arg("--config")
        .arg(config)
        .env("PGW_RELAY__SERVER__PUBLIC_ADDR", format!("127.0.0.1:{public_port}"))
        .env("PGW_RELAY__SERVER__INTERNAL_ADDR", format!("127.0.0.1:{internal_port}"))
        .env("PGW_RELAY__LOG__FILTER", "warn")
        .env_remove("PGW_RELAY_ENV")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pgw-relay starts");
    let relay = Relay {
        child,
        public: format!("http://127.0.0.1:{public_port}"),
        internal: format!("http://127.0.0.1:{internal_port}"),
    };
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(res) = client.get(format!("{}/readyz", relay.internal)).send().await {
            if res.status() == 200 {
                return relay;
            }
        }
        assert!(Instant::now() < until, "pgw-relay did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_config(dir: &std::path::Path, db_url: &str, broker_url: &str, exchange: &str) -> std::path::PathBuf {
    let path = dir.join("relay.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
shutdown_timeout = "10s"
[database]
url = "{db_url}"
[broker]
url = "{broker_url}"
exchange = "{exchange}"
default_queue = ""
poll_interval = "200ms"
[reconcile]
enabled = false
[internal_api]
tokens = ["{API_TOKEN}"]
[[merchants]]
id = "JT01"
secret_key = "{JT01_KEY}"
timezone = "+08:00"
"#
        ),
    )
    .unwrap();
    path
}

/// A configuration folder, a database and a bound test exchange for one relay process.
struct Setup {
    dir: tempfile::TempDir,
    db: TestDb,
    exchange: String,
    broker: TestBroker,
}

impl Setup {
    async fn new(backend: Backend) -> Setup {
        let exchange = test_exchange();
        let mut broker = TestBroker::new(&exchange).await;
        broker.bind().await;
        Setup { dir: tempfile::tempdir().unwrap(), db: TestDb::new(backend).await, exchange, broker }
    }
}

#[tokio::test]
async fn kill_9_while_accepting_loses_nothing_that_got_a_200() {
    for backend in BACKENDS {
        let Setup { dir, db, exchange, mut broker } = Setup::new(backend).await;
        // First life: the broker is unreachable, so everything accepted waits in the outbox.
        let closed = format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port());
        let mut relay = start_relay(&write_config(dir.path(), &db.url, &closed, &exchange)).await;
        let accepted = Arc::new(Mutex::new(HashSet::new()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let mut senders = Vec::new();
        for worker in 0..8 {
            let (client, public, accepted) = (client.clone(), relay.public.clone(), accepted.clone());
            senders.push(tokio::spawn(async move {
                for i in 0..400 {
                    let inv = format!("K{worker}x{i}x{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
                    let token = sign_jt01(&notification(&inv, "0000", json!(10), &inv));
                    let sent = client
                        .post(format!("{public}/2c2p/backend-notification"))
                        .header("content-type", "application/json")
                        .body(json!({ "payload": token }).to_string())
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status() == 200 => {
                            accepted.lock().unwrap().insert(inv);
                        }
                        _ => return,
                    }
                }
            }));
        }
        // Kill it hard while the senders are busy.
        let until = Instant::now() + Duration::from_secs(20);
        while accepted.lock().unwrap().len() < 200 {
            assert!(Instant::now() < until, "too few notifications accepted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        relay.child.kill().unwrap();
        relay.child.wait().unwrap();
        for s in senders {
            let _ = s.await;
        }
        let accepted: HashSet<String> = accepted.lock().unwrap().clone();
        assert!(accepted.len() >= 200);

        // Second life, with the broker: every accepted notification is published.
        let mut relay = start_relay(&write_config(dir.path(), &db.url, &amqp_url(), &exchange)).await;
        let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
        let until = Instant::now() + Duration::from_secs(60);
        while !accepted.iter().all(|inv| seen.contains_key(inv)) {
            let left = until.saturating_duration_since(Instant::now());
            let Some(msg) = broker.next(left.min(Duration::from_secs(5))).await else {
                let missing = accepted.iter().filter(|i| !seen.contains_key(*i)).count();
                assert!(Instant::now() < until, "{backend:?}: {missing} accepted notifications never published");
                continue;
            };
            let subject = msg.body["subject"].as_str().unwrap().to_string();
            seen.entry(subject).or_default().insert(msg.message_id());
        }
        for inv in &accepted {
            assert_eq!(seen[inv].len(), 1, "{backend:?}: {inv} published under different ids");
        }
        let _ = Command::new("kill").arg(relay.child.id().to_string()).status();
        relay.child.wait().unwrap();
        broker.cleanup(&[]).await;
        drop(db);
    }
}

#[tokio::test]
async fn sigterm_drains_requests_and_flushes_the_outbox() {
    // On PostgreSQL the final flush must not depend on connections the stopped HTTP workers opened.
    for backend in BACKENDS {
        let Setup { dir, db, exchange, mut broker } = Setup::new(backend).await;
        let mut relay = start_relay(&write_config(dir.path(), &db.url, &amqp_url(), &exchange)).await;
        let client = reqwest::Client::new();
        for i in 0..20 {
            let token = sign_jt01(&notification(&format!("T{i}"), "0000", json!(1), &i.to_string()));
            let res = client
                .post(format!("{}/2c2p/backend-notification", relay.public))
                .header("content-type", "application/json")
                .body(json!({ "payload": token }).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{backend:?}");
        }
        let started = Instant::now();
        assert!(Command::new("kill").args(["-TERM", &relay.child.id().to_string()]).status().unwrap().success());
        let status = tokio::task::spawn_blocking(move || relay.child.wait().unwrap()).await.unwrap();
        assert!(status.success(), "{backend:?}: exit status {status:?}");
        assert!(started.elapsed() < Duration::from_secs(15), "{backend:?}");
        let messages = broker.take_exactly(20, Duration::from_secs(5), Duration::from_millis(300)).await;
        assert_eq!(messages.len(), 20, "{backend:?}");
        broker.cleanup(&[]).await;
        drop(db);
    }
}

/// A gateway that accepts connections and never answers: every inquiry stays in flight.
fn silent_gateway() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{addr}")
}

async fn leased_invoices(backend: Backend, db_url: &str) -> i64 {
    scalar(backend, db_url, "SELECT COUNT(*) FROM invoices WHERE lease_owner IS NOT NULL").await
}

#[tokio::test]
async fn sigterm_under_load_exits_within_one_budget_with_nothing_lost_and_no_lease_held() {
    const BUDGET: Duration = Duration::from_secs(3);
    for backend in BACKENDS {
        let Setup { dir, db, exchange, mut broker } = Setup::new(backend).await;
        let path = write_config(dir.path(), &db.url, &amqp_url(), &exchange);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("shutdown_timeout = \"10s\"", &format!("shutdown_timeout = \"{}s\"", BUDGET.as_secs()));
        let text = text.replace(
            "[reconcile]\nenabled = false",
            "[reconcile]\nenabled = true\ninterval = \"50ms\"\ngrace = \"10ms\"\nconcurrency = 8\nmax_rps = 100\nlease = \"5m\"",
        );
        std::fs::write(&path, format!("{text}\n[gateway]\nbase_url = \"{}\"\ntimeout = \"30s\"\n", silent_gateway()))
            .unwrap();
        let mut relay = start_relay(&path).await;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        // Invoices whose inquiries hang in the gateway: leased and in flight at SIGTERM.
        for i in 0..20 {
            let res = client
                .post(format!("{}/v1/invoices", relay.internal))
                .bearer_auth(API_TOKEN)
                .json(&json!({"merchantID": "JT01", "invoiceNo": format!("R{i}"), "amount": "1.00", "currencyCode": "SGD"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201, "{backend:?}");
        }
        let until = Instant::now() + Duration::from_secs(10);
        // The first tick leases what is due and hangs on its inquiries.
        while leased_invoices(backend, &db.url).await == 0 {
            assert!(Instant::now() < until, "{backend:?}: the inquiries never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Notifications keep arriving while the process stops.
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let load = {
            let (accepted, public, client) = (accepted.clone(), relay.public.clone(), client.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let inv = format!("L{i}");
                    let token = sign_jt01(&notification(&inv, "0000", json!(1), &i.to_string()));
                    let sent = client
                        .post(format!("{public}/2c2p/backend-notification"))
                        .header("content-type", "application/json")
                        .body(json!({ "payload": token }).to_string())
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status() == 200 => accepted.lock().unwrap().push(inv),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        assert!(Command::new("kill").args(["-TERM", &relay.child.id().to_string()]).status().unwrap().success());
        let status = tokio::task::spawn_blocking(move || relay.child.wait().unwrap()).await.unwrap();
        let took = started.elapsed();
        assert!(status.success(), "{backend:?}: exit status {status:?}");
        assert!(took < BUDGET + Duration::from_millis(900), "{backend:?}: took {took:?} for a {BUDGET:?} budget");
        let _ = load.await;
        assert_eq!(leased_invoices(backend, &db.url).await, 0, "{backend:?}: leases left behind");
        let accepted: HashSet<String> = accepted.lock().unwrap().iter().cloned().collect();
        assert!(!accepted.is_empty(), "{backend:?}");
        let messages = broker.take_exactly(accepted.len(), Duration::from_secs(10), Duration::from_millis(300)).await;
        let published: HashSet<String> =
            messages.iter().map(|m| m.body["data"]["invoiceNo"].as_str().unwrap().to_string()).collect();
        assert_eq!(published, accepted, "{backend:?}: every notification that got a 200 is published");
        broker.cleanup(&[]).await;
        drop(db);
    }
}
