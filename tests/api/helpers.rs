//! Starting the service for a test, and talking to it.

use std::sync::Once;
use std::time::Duration;

use pgw_relay::config::{self, Sources};
use pgw_relay::startup::Application;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

/// The JT01 sandbox key (public demo material).
pub const JT01_KEY: &str = "ECC4E54DBA738857B84A7EBC6B5DC7187B8DA68750E88AB53AAA41F548D6F2D9";
/// The key of the real 4.1 sandbox notification in the vectors file.
pub const REAL_MERCHANT: &str = "702702000001875";
pub const REAL_KEY: &str = "33949FCDF8791E4DC33E186BA30C93232870F093CCC2D4CCC4CE215B819B6550";
pub const API_TOKEN: &str = "test-internal-token";

/// The broker tests publish to.
pub fn amqp_url() -> String {
    std::env::var("PGW_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A unique exchange name for one test.
pub fn test_exchange() -> String {
    format!("pgw.test.{}", uuid::Uuid::now_v7().simple())
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Both backends, for tests that must behave the same on each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// The server holding test databases.
pub fn postgres_admin_url() -> String {
    std::env::var("PGW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database made for one test and dropped afterwards.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/relay.db", dir.path().display());
                TestDb { url, pg_name: None, _dir: Some(dir) }
            }
            Backend::Postgres => {
                let name = format!("pgw_test_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL reachable for tests");
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).expect("admin url");
                url.set_path(&name);
                TestDb { url: url.to_string(), pg_name: Some(name), _dir: None }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Knobs for one test's service.
pub struct Options {
    pub backend: Backend,
    /// Extra TOML appended to the generated config.
    pub extra_toml: String,
    /// Reuse this database (restart tests).
    pub db_url: Option<String>,
    /// `database.migrate_on_start`.
    pub migrate: bool,
    /// Publish to this exchange on the real RabbitMQ (no default queue); `None` points the relay at
    /// a closed port so tests that do not look at events leave nothing on the broker.
    pub exchange: Option<String>,
    /// Extra keys for merchant JT01.
    pub jt01_extra: String,
    /// Bind the public listener here instead of a free port.
    pub public_port: Option<u16>,
    /// Extra keys for `[server]`.
    pub server_extra: String,
    /// Extra keys for `[database]`.
    pub database_extra: String,
}

impl Options {
    pub fn new(backend: Backend) -> Self {
        Options {
            backend,
            extra_toml: String::new(),
            db_url: None,
            migrate: true,
            exchange: None,
            jt01_extra: String::new(),
            public_port: None,
            server_extra: String::new(),
            database_extra: String::new(),
        }
    }
}

/// A running service.
pub struct TestApp {
    pub public: String,
    pub internal: String,
    pub client: reqwest::Client,
    /// The database this app uses (restart tests start a second app on it).
    #[allow(dead_code)]
    pub db_url: String,
    pub shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _db: Option<TestDb>,
    _config_dir: tempfile::TempDir,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            pgw_relay::telemetry::init(&pgw_relay::config::LogSettings {
                format: pgw_relay::config::LogFormat::Pretty,
                filter: "info".into(),
            });
        }
    });
}

/// Starts the service on free loopback ports with merchants JT01 and the real-vector merchant.
pub async fn spawn_app(opts: Options) -> TestApp {
    init_logs();
    let (db, db_url) = match &opts.db_url {
        Some(url) => (None, url.clone()),
        None => {
            let db = TestDb::new(opts.backend).await;
            let url = db.url.clone();
            (Some(db), url)
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("test.toml");
    let toml = format!(
        r#"
[server]
public_addr = "127.0.0.1:{public_port}"
internal_addr = "127.0.0.1:0"
shutdown_timeout = "{shutdown_timeout}"
{server_extra}

[log]
format = "pretty"

[database]
url = "{db_url}"
migrate_on_start = {migrate}
{database_extra}

[broker]
url = "{broker_url}"
exchange = "{exchange}"
default_queue = ""
connection_name = "pgw-relay-test"

[internal_api]
tokens = ["{API_TOKEN}"]

[[merchants]]
id = "JT01"
secret_key = "{JT01_KEY}"
timezone = "+08:00"
result_url = "https://shop.example/payment/result"
{jt01_extra}

[[merchants]]
id = "{REAL_MERCHANT}"
secret_key = "{REAL_KEY}"
timezone = "+08:00"
{extra}
"#,
        extra = opts.extra_toml,
        public_port = opts.public_port.unwrap_or(0),
        // Without a broker the outbox cannot be flushed at shutdown: do not wait for it.
        shutdown_timeout = if opts.exchange.is_some() { "5s" } else { "1s" },
        broker_url = if opts.exchange.is_some() {
            amqp_url()
        } else {
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port())
        },
        exchange = opts.exchange.clone().unwrap_or_else(|| "pgw.payments.unused".into()),
        jt01_extra = opts.jt01_extra,
        server_extra = opts.server_extra,
        database_extra = opts.database_extra,
        migrate = opts.migrate
    );
    std::fs::write(&file, toml).expect("write config");
    let sources =
        Sources { dir: Some(dir.path().to_path_buf()), env_name: None, files: vec![file], use_environment: false };
    let config = config::load(&sources).expect("test config is valid");
    let app = Application::build(config).await.expect("application starts");
    let public = format!("http://{}", app.public_addr());
    let internal = format!("http://{}", app.internal_addr());
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        public,
        internal,
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client"),
        db_url,
        shutdown,
        task: Some(task),
        _db: db,
        _config_dir: dir,
    }
}

impl TestApp {
    /// Posts a backend notification body as 2C2P would.
    pub async fn post_notification_body(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("{}/2c2p/backend-notification", self.public))
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Posts `{"payload": token}`.
    pub async fn post_notification(&self, token: &str) -> reqwest::Response {
        self.post_notification_body(json!({ "payload": token }).to_string()).await
    }

    /// Registers a new invoice of JT01 for `amount` SGD through `POST /v1/invoices` (expects `201`).
    pub async fn register_invoice(&self, invoice: &str, amount: &str) {
        let res = self
            .client
            .post(format!("{}/v1/invoices", self.internal))
            .bearer_auth(API_TOKEN)
            .json(&json!({"merchantID": "JT01", "invoiceNo": invoice, "amount": amount, "currencyCode": "SGD"}))
            .send()
            .await
            .expect("request sent");
        assert_eq!(res.status(), 201, "registering {invoice}");
    }

    /// `GET /v1/invoices/{m}/{i}` with the test token.
    pub async fn get_invoice(&self, merchant: &str, invoice: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/v1/invoices/{merchant}/{invoice}", self.internal))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    /// The invoice JSON, asserting it exists.
    pub async fn invoice(&self, merchant: &str, invoice: &str) -> Value {
        let res = self.get_invoice(merchant, invoice).await;
        assert_eq!(res.status(), 200, "invoice {invoice} should exist");
        res.json().await.expect("invoice json")
    }

    /// Every history entry of an invoice, through the paginated history API.
    #[allow(dead_code)]
    pub async fn history(&self, merchant: &str, invoice: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let res = self
                .client
                .get(format!("{}/v1/invoices/{merchant}/{invoice}/history?limit=200&cursor={cursor}", self.internal))
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .expect("request sent");
            assert_eq!(res.status(), 200);
            let page: Value = res.json().await.expect("history json");
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["nextCursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return items,
            }
        }
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.internal)).send().await.expect("metrics").text().await.expect("text")
    }

    /// The value of one sample line (`name{labels}`), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
    }

    /// Stops the service gracefully and waits for it, then checks every event it stored against
    /// the published schemas (docs/schemas/events).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        crate::event_schema::assert_stored_events_valid(&self.db_url).await;
    }
}

/// Reads `series` (exact name with labels as rendered) from a Prometheus exposition.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
}

/// Builds notification claims in the 4.3 spelling.
pub fn notification(invoice: &str, resp_code: &str, amount: Value, tran_ref: &str) -> Value {
    json!({
        "merchantID": "JT01",
        "invoiceNo": invoice,
        "accountNo": "411111XXXXXX1111",
        "amount": amount,
        "currencyCode": "SGD",
        "customerToken": "28052010234224845229",
        "tranRef": tran_ref,
        "referenceNo": "2785703",
        "approvalCode": "531484",
        "eci": "05",
        "transactionDateTime": "20261127080508",
        "agentCode": "OCBC",
        "channelCode": "VI",
        "respCode": resp_code,
        "respDesc": "Success",
        "userDefined1": "order-42",
    })
}

/// Signs claims with the JT01 key.
pub fn sign_jt01(claims: &Value) -> String {
    pgw_relay::protocol::jwt::sign(claims, JT01_KEY)
}

/// A unique invoice number.
pub fn invoice_no() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("INV{}", &id[id.len() - 16..])
}

/// Waits until `check` holds, polling every 50 ms; fails the test naming `what` after `within`.
#[allow(dead_code)]
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = std::time::Instant::now() + within;
    while !check().await {
        assert!(std::time::Instant::now() < until, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until invoice `inv` of JT01 is in `status`; its document.
#[allow(dead_code)]
pub async fn wait_for_status(app: &TestApp, inv: &str, status: &str, within: Duration) -> Value {
    let until = std::time::Instant::now() + within;
    loop {
        let body = app.invoice("JT01", inv).await;
        if body["status"] == status {
            return body;
        }
        assert!(std::time::Instant::now() < until, "invoice {inv} is {} not {status}: {body}", body["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `pgw-relay` binary run as an operator runs it: `--config FILE`, listeners on free loopback
/// ports, no `PGW_RELAY_ENV` or `RUST_LOG` from the test's environment.
pub struct RelayProcess {
    pub child: std::process::Child,
    pub public: String,
    pub internal: String,
}

impl RelayProcess {
    /// Starts it with `stdout` as its standard output (stderr joins it when piped) and waits
    /// until `GET <internal><ready_path>` answers `200`.
    pub async fn start(config: &std::path::Path, stdout: std::process::Stdio, ready_path: &str) -> RelayProcess {
        use std::process::{Command, Stdio};
        let (public_port, internal_port) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_pgw-relay"))
            .arg("--config")
            .arg(config)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PGW_RELAY__SERVER__PUBLIC_ADDR", format!("127.0.0.1:{public_port}"))
            .env("PGW_RELAY__SERVER__INTERNAL_ADDR", format!("127.0.0.1:{internal_port}"))
            .env_remove("PGW_RELAY_ENV")
            .env_remove("RUST_LOG")
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("pgw-relay starts");
        let relay = RelayProcess {
            child,
            public: format!("http://127.0.0.1:{public_port}"),
            internal: format!("http://127.0.0.1:{internal_port}"),
        };
        let client = reqwest::Client::new();
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while !matches!(client.get(format!("{}{ready_path}", relay.internal)).send().await, Ok(r) if r.status() == 200)
        {
            assert!(std::time::Instant::now() < until, "pgw-relay did not answer {ready_path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        relay
    }

    /// Sends SIGTERM and waits for the exit; the exit status and what it wrote (stdout when piped,
    /// then stderr).
    pub async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        tokio::task::spawn_blocking(move || {
            let status = self.child.wait().expect("wait for pgw-relay");
            let mut out = String::new();
            if let Some(mut stdout) = self.child.stdout.take() {
                stdout.read_to_string(&mut out).expect("read stdout");
            }
            if let Some(mut stderr) = self.child.stderr.take() {
                stderr.read_to_string(&mut out).expect("read stderr");
            }
            (status, out)
        })
        .await
        .expect("the wait task")
    }
}

/// Serves every request with `handler` on a free loopback port, from a thread of its own, until
/// the returned handle is stopped; the base URL and the handle. For the small servers tests stand
/// up beside the relay (a merchant's receiver, an OTLP collector).
pub fn serve_on_thread<F, Fut>(handler: F) -> (String, actix_web::dev::ServerHandle)
where
    F: Fn(actix_web::HttpRequest, actix_web::web::Bytes) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = actix_web::HttpResponse> + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().default_service(actix_web::web::to(handler.clone()))
            })
            .workers(1)
            .disable_signals()
            .shutdown_timeout(1)
            .listen(listener)
            .expect("listen")
            .run();
            tx.send(server.handle()).expect("hand over the server handle");
            let _ = server.await;
        });
    });
    (base_url, rx.recv().expect("the server started"))
}

/// Makes the store refuse history rows of `inv` (a constraint the relay does not expect); the
/// returned statement lifts it.
pub async fn refuse_history_of(backend: Backend, db_url: &str, inv: &str) -> String {
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(db_url).await.unwrap();
            sqlx::query(&format!(
                "CREATE TRIGGER refuse_test BEFORE INSERT ON history WHEN NEW.invoice_no = '{inv}' \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ))
            .execute(&mut c)
            .await
            .unwrap();
            "DROP TRIGGER refuse_test".into()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
            sqlx::query(&format!("ALTER TABLE history ADD CONSTRAINT refuse_test CHECK (invoice_no <> '{inv}')"))
                .execute(&mut c)
                .await
                .unwrap();
            "ALTER TABLE history DROP CONSTRAINT refuse_test".into()
        }
    }
}

pub async fn lift(backend: Backend, db_url: &str, statement: &str) {
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(db_url).await.unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        }
    }
}

/// One integer from the test database (`sql` returns one row of one integer column).
pub async fn scalar(backend: Backend, url: &str, sql: &str) -> i64 {
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
    }
}
