//! What an anonymous caller can do to the HTTP layer: no metric series, no connection held open,
//! nothing of its query string in the logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;

use crate::helpers::*;

/// The number of `http_request_duration_seconds` series in a `/metrics` text.
fn request_series(metrics: &str) -> usize {
    metrics.lines().filter(|l| l.starts_with("pgw_relay_http_request_duration_seconds_count{")).count()
}

/// A method token nobody uses, `len` bytes long.
fn made_up_method(i: usize, len: usize) -> reqwest::Method {
    let mut name = format!("M{i}");
    while name.len() < len {
        name.push((b'A' + (name.len() % 26) as u8) as char);
    }
    reqwest::Method::from_bytes(name.as_bytes()).unwrap()
}

#[tokio::test]
async fn made_up_methods_and_paths_create_no_metric_series() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let client = reqwest::Client::new();
    let send = |i: usize| {
        let client = client.clone();
        let base = if i % 2 == 0 { app.public.clone() } else { app.internal.clone() };
        async move {
            let path = format!("/{}/x{i}", "p".repeat(i % 50));
            let _ = client.request(made_up_method(i, 2000), format!("{base}{path}")).send().await;
            let _ = client.get(format!("{base}/nope/{i}?q={i}")).send().await;
        }
    };
    for i in 0..10 {
        send(i).await;
    }
    app.metrics().await; // the scrape itself is a series of its own
    let before = request_series(&app.metrics().await);
    for i in 10..1010 {
        send(i).await;
    }
    let metrics = app.metrics().await;
    assert_eq!(request_series(&metrics), before, "1,000 made-up requests added series");
    assert!(metrics.len() < 200_000, "/metrics is {} bytes", metrics.len());
    assert!(metrics.contains(r#"method="other""#));
    assert!(metrics.contains(r#"route="unmatched""#));
    app.stop().await;
}

/// Starts an app whose requests must arrive within 2 s.
async fn app_with_request_timeout(extra: &str) -> TestApp {
    let mut opts = Options::new(Backend::Sqlite);
    opts.extra_toml = extra.to_string();
    opts.server_extra = "request_timeout = \"2s\"\n".into();
    spawn_app(opts).await
}

fn connect(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    stream
}

/// Sends `bytes` one at a time every `every` until the server closes the connection; returns
/// how long that took (or `None` if it was still open after `give_up`).
fn dribble_until_closed(stream: &mut TcpStream, bytes: &[u8], every: Duration, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    for b in bytes.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[*b]).is_err() {
            return Some(started.elapsed());
        }
        let until = Instant::now() + every;
        while Instant::now() < until {
            match stream.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => {} // a 408 answer before the close
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return Some(started.elapsed()),
            }
        }
    }
    None
}

#[tokio::test]
async fn a_body_sent_byte_by_byte_is_cut_off_at_the_request_deadline() {
    let app = app_with_request_timeout("").await;
    let public = app.public.clone();
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut stream = connect(&public);
        stream
            .write_all(
                b"POST /2c2p/backend-notification HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 60000\r\n\r\n",
            )
            .unwrap();
        dribble_until_closed(&mut stream, b"{", Duration::from_millis(500), Duration::from_secs(15))
    })
    .await
    .unwrap();
    let closed_after = closed_after.expect("the connection was still open after 15 s");
    assert!(closed_after < Duration::from_secs(5), "closed after {closed_after:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_second_request_head_sent_slowly_on_a_kept_alive_connection_is_cut_off() {
    let app = app_with_request_timeout("").await;
    for base in [app.public.clone(), app.internal.clone()] {
        let closed_after = tokio::task::spawn_blocking(move || {
            let mut stream = connect(&base);
            // A first, complete request on the connection, and its answer.
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = [0u8; 4096];
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                match stream.read(&mut buf) {
                    Ok(n) if n > 0 => break,
                    _ => assert!(Instant::now() < until, "no answer to the first request"),
                }
            }
            dribble_until_closed(
                &mut stream,
                b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                Duration::from_millis(300),
                Duration::from_secs(15),
            )
        })
        .await
        .unwrap();
        let closed_after = closed_after.expect("the kept-alive connection was still open after 15 s");
        assert!(closed_after < Duration::from_secs(5), "closed after {closed_after:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn each_listener_serves_at_most_max_connections_at_once() {
    let mut opts = Options::new(Backend::Sqlite);
    opts.server_extra = "max_connections = 1\nrequest_timeout = \"30s\"\n".into();
    let app = spawn_app(opts).await;
    // The internal listener has one worker: one open connection uses its whole allowance.
    let idle = connect(&app.internal);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::builder().timeout(Duration::from_millis(800)).build().unwrap();
    let blocked = client.get(format!("{}/healthz", app.internal)).send().await;
    assert!(blocked.is_err(), "a second connection was served while the first held the only slot");
    drop(idle);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let res = client.get(format!("{}/healthz", app.internal)).send().await.expect("served once the slot is free");
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn the_access_log_carries_the_path_but_never_the_query_string() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    let db = dir.path().join("relay.db");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n[broker]\nurl = \"amqp://guest:guest@127.0.0.1:{}/%2f\"\n\
             [reconcile]\nenabled = false\n[log]\nformat = \"json\"\nfilter = \"info\"\n\
             [[merchants]]\nid = \"JT01\"\nsecret_key = \"{JT01_KEY}\"\ntimezone = \"+08:00\"\n",
            db.display(),
            free_port()
        ),
    )
    .unwrap();
    let relay = RelayProcess::start(&config, Stdio::piped(), "/healthz").await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let customer = json!({"invoiceNo": "LOGCHECK1", "respCode": "2000", "respDesc": "CUSTOMER-SECRET-MARKER"});
    let response = base64::engine::general_purpose::STANDARD.encode(customer.to_string());
    let res = client
        .get(format!(
            "{}/2c2p/frontend-return?merchantID=JT01&token=QUERY-TOKEN-MARKER&paymentResponse={}",
            relay.public,
            url::form_urlencoded::byte_serialize(response.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "no result_url: a small page");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, output) = relay.terminate().await;
    assert!(output.contains("/2c2p/frontend-return"), "the access log names the path: {output}");
    for marker in ["QUERY-TOKEN-MARKER", "CUSTOMER-SECRET-MARKER", &response] {
        assert!(!output.contains(marker), "{marker} leaked into the logs");
    }
}
