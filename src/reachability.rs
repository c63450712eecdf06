//! `pgw-relay check-config --connect`: whether the database, the broker and the gateway answer,
//! each within a few seconds, without changing anything.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::{redact_url, Config};
use crate::store::Store;

/// How long each check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// One dependency's check: its name, where it is (password hidden) and the failure, if any.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub target: String,
    pub error: Option<String>,
}

/// Checks the database (a connection and `SELECT 1`, no migration), the broker (an AMQP
/// connection, closed at once) and the gateway (any HTTP answer from `gateway.base_url`).
pub async fn check_all(config: &Config) -> Vec<Check> {
    let s = &config.settings;
    let database = async {
        let store = Store::connect(&s.database).await.map_err(|e| e.chain())?;
        store.ping().await.map_err(|e| e.chain())
    };
    let broker = async {
        let properties = lapin::ConnectionProperties::default();
        let connection =
            lapin::Connection::connect(s.broker.url.expose_secret(), properties).await.map_err(|e| e.to_string())?;
        let _ = connection.close(200, "check".into()).await;
        Ok::<(), String>(())
    };
    let gateway = async {
        let client = reqwest::Client::builder().timeout(CHECK_TIMEOUT).build().map_err(|e| e.to_string())?;
        client.get(&s.gateway.base_url).send().await.map(|_| ()).map_err(|e| e.without_url().to_string())
    };
    let timed =
        |name: &'static str, target: String, result: Result<Result<(), String>, tokio::time::error::Elapsed>| {
            let error = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            Check { name, target, error }
        };
    let (d, b, g) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, database),
        tokio::time::timeout(CHECK_TIMEOUT, broker),
        tokio::time::timeout(CHECK_TIMEOUT, gateway),
    );
    vec![
        timed("database", redact_url(s.database.url.expose_secret()), d),
        timed("broker", redact_url(s.broker.url.expose_secret()), b),
        timed("gateway", s.gateway.base_url.clone(), g),
    ]
}
