//! `pgw-relay prune`: settled invoices older than the cut-off go with their history and events;
//! nothing else does, not even beside live traffic.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;

use crate::broker::TestBroker;
use crate::helpers::*;

/// Runs one statement on the test database; the rows it changed.
async fn execute(backend: Backend, url: &str, sql: &str) -> u64 {
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap().rows_affected()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap().rows_affected()
        }
    }
}

fn quoted(invoices: &[String]) -> String {
    invoices.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(",")
}

/// `pgw-relay prune …` on `db_url`; its JSON report.
fn prune(db_url: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgw-relay"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PGW_RELAY") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .arg("prune")
        .args(args)
        .env("PGW_RELAY__DATABASE__URL", db_url)
        .env("PGW_RELAY__LOG__FILTER", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "prune failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn settle(app: &TestApp, inv: &str) {
    let res = app.post_notification(&sign_jt01(&notification(inv, "0000", json!("10.00"), inv))).await;
    assert_eq!(res.status(), 200);
}

/// Sends a notification as 2C2P does: again until it is answered `200`.
async fn deliver(client: reqwest::Client, public: String, inv: String) {
    let token = sign_jt01(&notification(&inv, "0000", json!("10.00"), &inv));
    let body = json!({ "payload": token }).to_string();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let res = client
            .post(format!("{public}/2c2p/backend-notification"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if matches!(&res, Ok(r) if r.status() == 200) {
            return;
        }
        assert!(Instant::now() < until, "{inv} was never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_only_old_settled_invoices_and_loses_nothing_beside_live_traffic() {
    for backend in BACKENDS {
        let exchange = test_exchange();
        let mut broker = TestBroker::new(&exchange).await;
        broker.bind().await;
        let mut opts = Options::new(backend);
        opts.exchange = Some(exchange);
        let app = spawn_app(opts).await;
        let url = app.db_url.clone();

        let old_settled: Vec<String> = (0..20).map(|_| invoice_no()).collect();
        let (old_pending, old_review, old_unpublished, recent) =
            (invoice_no(), invoice_no(), invoice_no(), invoice_no());
        for inv in old_settled.iter().chain([&old_review, &old_unpublished, &recent]) {
            settle(&app, inv).await;
        }
        app.register_invoice(&old_pending, "10.00").await;
        let until = Instant::now() + Duration::from_secs(15);
        while scalar(backend, &url, "SELECT COUNT(*) FROM events WHERE published_at IS NULL").await > 0 {
            assert!(Instant::now() < until, "events were not published");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // 100 days ago; one under review; one whose event waits for a relay on another replica.
        let old =
            [old_settled.clone(), vec![old_pending.clone(), old_review.clone(), old_unpublished.clone()]].concat();
        let day = 86_400_000i64;
        let backdate = format!(
            "UPDATE invoices SET created_at = created_at - {d}, updated_at = updated_at - {d} WHERE invoice_no IN ({})",
            quoted(&old),
            d = 100 * day
        );
        assert_eq!(execute(backend, &url, &backdate).await, old.len() as u64);
        execute(backend, &url, &format!("UPDATE invoices SET needs_review = TRUE WHERE invoice_no = '{old_review}'"))
            .await;
        let far = pgw_relay::store::now_ms() + day;
        let waiting = format!(
            "UPDATE events SET published_at = NULL, claimed_until = {far}, claimed_by = 'elsewhere' \
             WHERE invoice_no = '{old_unpublished}'"
        );
        assert_eq!(execute(backend, &url, &waiting).await, 1);

        let dry = prune(&url, &["--older-than", "30d", "--dry-run"]);
        assert_eq!(dry["prunable"], 20, "{backend:?}: {dry}");
        assert_eq!(app.invoice("JT01", &old_settled[0]).await["status"], "succeeded", "a dry run deletes nothing");

        // Live traffic while the prune runs in small batches.
        let live: Vec<String> = (0..120).map(|_| invoice_no()).collect();
        let senders: Vec<_> = live
            .chunks(30)
            .map(|chunk| {
                let (client, public, chunk) = (app.client.clone(), app.public.clone(), chunk.to_vec());
                tokio::spawn(async move {
                    for inv in chunk {
                        deliver(client.clone(), public.clone(), inv).await;
                    }
                })
            })
            .collect();
        let prune_url = url.clone();
        let report = tokio::task::spawn_blocking(move || prune(&prune_url, &["--older-than", "30d", "--batch", "3"]))
            .await
            .unwrap();
        for s in senders {
            s.await.unwrap();
        }
        assert_eq!(report["deleted"], json!({"invoices": 20, "history": 20, "events": 20}), "{backend:?}: {report}");
        assert!(report["batches"].as_u64().unwrap() >= 7, "{report}");

        for inv in &old_settled {
            assert_eq!(app.get_invoice("JT01", inv).await.status(), 404, "{backend:?}: {inv} was pruned");
        }
        let q = quoted(&old_settled);
        for table in ["history", "events"] {
            let left = scalar(backend, &url, &format!("SELECT COUNT(*) FROM {table} WHERE invoice_no IN ({q})")).await;
            assert_eq!(left, 0, "{backend:?}: {table} of pruned invoices");
        }
        for kept in [&old_pending, &old_review, &old_unpublished, &recent] {
            let inv = app.invoice("JT01", kept).await;
            assert_eq!(inv["history"].as_array().unwrap().len(), usize::from(kept != &old_pending), "{kept}");
        }
        assert_eq!(app.invoice("JT01", &old_unpublished).await["events"].as_array().unwrap().len(), 1);
        for inv in &live {
            let doc = app.invoice("JT01", inv).await;
            assert_eq!(doc["status"], "succeeded", "{backend:?}: live {inv}");
            assert_eq!(doc["history"].as_array().unwrap().len(), 1);
            assert_eq!(doc["events"].as_array().unwrap().len(), 1);
        }
        // The gauges follow the deletes: live + recent + under review + waiting.
        let succeeded = (live.len() + 3) as f64;
        assert_eq!(app.metric("pgw_relay_invoices{status=\"succeeded\"}").await, succeeded, "{backend:?}");
        assert_eq!(app.metric("pgw_relay_invoices{status=\"pending\"}").await, 1.0, "{backend:?}");
        let again = prune(&url, &["--older-than", "30d"]);
        assert_eq!(again["deleted"]["invoices"], 0, "{backend:?}: nothing else is prunable");
        app.stop().await;
        broker.cleanup(&[]).await;
    }
}

#[test]
fn prune_refuses_a_cut_off_under_an_hour() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgw-relay"));
    let out = cmd.args(["prune", "--older-than", "5m"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1h"));
}

#[tokio::test]
async fn background_retention_prunes_old_settled_invoices_and_counts_them() {
    for backend in BACKENDS {
        let exchange = test_exchange();
        let mut broker = TestBroker::new(&exchange).await;
        broker.bind().await;
        let mut opts = Options::new(backend);
        opts.exchange = Some(exchange);
        opts.extra_toml = "[retention]\nenabled = true\nolder_than = \"1h\"\ninterval = \"1s\"\nbatch = 10\n".into();
        let app = spawn_app(opts).await;
        let (old, fresh) = (invoice_no(), invoice_no());
        settle(&app, &old).await;
        settle(&app, &fresh).await;
        let url = app.db_url.clone();
        let until = Instant::now() + Duration::from_secs(15);
        while scalar(backend, &url, "SELECT COUNT(*) FROM events WHERE published_at IS NULL").await > 0 {
            assert!(Instant::now() < until, "events were not published");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let two_hours = 2 * 3_600_000;
        let sql = format!("UPDATE invoices SET updated_at = updated_at - {two_hours} WHERE invoice_no = '{old}'");
        assert_eq!(execute(backend, &url, &sql).await, 1);
        let until = Instant::now() + Duration::from_secs(15);
        while app.get_invoice("JT01", &old).await.status() != 404 {
            assert!(Instant::now() < until, "{backend:?}: the old invoice was not pruned");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(app.invoice("JT01", &fresh).await["status"], "succeeded");
        assert_eq!(app.metric("pgw_relay_retention_deleted_total{table=\"invoices\"}").await, 1.0, "{backend:?}");
        assert_eq!(app.metric("pgw_relay_retention_deleted_total{table=\"events\"}").await, 1.0, "{backend:?}");
        app.stop().await;
        broker.cleanup(&[]).await;
    }
}
