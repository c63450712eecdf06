//! The `pgw-relay` binary's sub-commands and start-up errors.

use std::process::Command;

fn relay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgw-relay"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PGW_RELAY") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("jt01");
    std::fs::write(&key_file, "super-secret-merchant-key\n").unwrap();
    let file = dir.path().join("extra.toml");
    std::fs::write(
        &file,
        format!("[[merchants]]\nid = \"JT01\"\nsecret_key_file = \"{}\"\ntimezone = \"+07:00\"\n", key_file.display()),
    )
    .unwrap();
    let out = relay()
        .args(["check-config", "--config"])
        .arg(&file)
        .env("PGW_RELAY__DATABASE__URL", "postgres://relay:hunter2-password@127.0.0.1/relay")
        .env("PGW_RELAY__INTERNAL_API__TOKENS", "token-one-abcdef,token-two-abcdef")
        .env("PGW_RELAY__RECONCILE__MAX_RPS", "7")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cfg["reconcile"]["max_rps"], 7, "environment variables override files");
    assert_eq!(cfg["merchants"][0]["id"], "JT01");
    assert_eq!(cfg["internal_api"]["tokens"].as_array().unwrap().len(), 2);
    for secret in ["super-secret-merchant-key", "hunter2-password", "token-one-abcdef"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn a_bad_config_stops_start_up_with_a_message_naming_the_key() {
    let cases = [
        ("PGW_RELAY__RECONCILE__GRACE", "whenever", "grace"),
        ("PGW_RELAY__SERVER__PUBLIC_ADDR", "not-an-address", "server.public_addr"),
        ("PGW_RELAY__DATABASE__URL", "mysql://x", "database.url"),
        ("PGW_RELAY__BROKER__URL", "http://x", "broker.url"),
    ];
    for (var, value, key) in cases {
        let out = relay().env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{var}: {err}");
    }
}

#[test]
fn help_lists_the_sub_commands() {
    let out = relay().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["migrate", "check-config", "serve"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn the_shipped_deployment_configs_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "deploy/base/production.toml",
        "deploy/overlays/production/production.toml",
        "deploy/overlays/staging/staging.toml",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        // Merchant keys are Secret mounts in the cluster: stand them up in a temp dir.
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("merchants");
        std::fs::create_dir_all(&secrets).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with("secret_key_file")) {
            let path = line.split('"').nth(1).unwrap();
            let name = path.rsplit('/').next().unwrap();
            std::fs::write(secrets.join(name), "a-merchant-secret-key").unwrap();
        }
        let local = dir.path().join("config.toml");
        std::fs::write(&local, text.replace("/run/secrets/merchants/", &format!("{}/", secrets.display()))).unwrap();
        let out = relay()
            .args(["check-config", "--config"])
            .arg(&local)
            .env("PGW_RELAY__DATABASE__URL", "postgres://relay:pw@db.example:5432/relay")
            .env("PGW_RELAY__BROKER__URL", "amqps://relay:pw@mq.example:5671/%2f")
            .env("PGW_RELAY__INTERNAL_API__TOKENS", "a-long-internal-token")
            .output()
            .unwrap();
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_mistyped_key_in_a_file_or_the_environment_stops_start_up_naming_the_closest_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "[[merchants]]\nid = \"JT01\"\nsecret_key = \"a-merchant-key\"\nprevious_secret_key_flie = \"/run/old\"\n",
    )
    .unwrap();
    for sub in [None, Some("check-config")] {
        let mut cmd = relay();
        cmd.args(sub).arg("--config").arg(&file);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{sub:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("`merchants[0].previous_secret_key_flie`"), "{err}");
        assert!(err.contains("did you mean `merchants[0].previous_secret_key_file`"), "{err}");
    }
    for sub in [None, Some("check-config")] {
        let out = relay().args(sub).env("PGW_RELAY__RECONCILE__MAXRPS", "5").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{sub:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("`reconcile.maxrps` (from PGW_RELAY__RECONCILE__MAXRPS)"), "{err}");
        assert!(err.contains("did you mean `reconcile.max_rps`"), "{err}");
    }
}

#[test]
fn check_config_prints_every_effective_key() {
    let out = relay().arg("check-config").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (section, key) in [
        ("broker", "reconnect_min_backoff"),
        ("broker", "reconnect_max_backoff"),
        ("broker", "poll_interval"),
        ("broker", "claim_lease"),
        ("database", "max_connections"),
        ("server", "shutdown_timeout"),
    ] {
        assert!(!cfg[section][key].is_null(), "{section}.{key} missing: {cfg}");
    }
}

#[test]
fn check_config_connect_reports_each_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = relay()
        .args(["check-config", "--connect"])
        .env("PGW_RELAY__DATABASE__URL", format!("sqlite://{}/check.db", dir.path().display()))
        .env("PGW_RELAY__BROKER__URL", crate::helpers::amqp_url())
        .env("PGW_RELAY__GATEWAY__BASE_URL", format!("http://127.0.0.1:{closed}"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "an unreachable gateway fails the check: {err}");
    assert!(err.contains("database reachable"), "{err}");
    assert!(err.contains("broker reachable"), "{err}");
    assert!(err.contains("gateway NOT reachable"), "{err}");
}

/// Runs `pgw-relay healthcheck` with extra arguments and environment; its exit code.
async fn healthcheck(args: &[&str], env: &[(&str, String)]) -> Option<i32> {
    let mut cmd = relay();
    cmd.arg("healthcheck").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap().status.code()).await.unwrap()
}

#[tokio::test]
async fn healthcheck_exits_zero_only_while_the_instance_answers() {
    use crate::helpers::{spawn_app, Backend, Options};
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let internal = app.internal.trim_start_matches("http://").to_string();
    // The configured internal listener (as in a container), and an explicit address.
    assert_eq!(healthcheck(&[], &[("PGW_RELAY__SERVER__INTERNAL_ADDR", internal.clone())]).await, Some(0));
    assert_eq!(healthcheck(&["--addr", &internal], &[]).await, Some(0));
    // The public listener serves no /healthz.
    let public = app.public.trim_start_matches("http://").to_string();
    assert_eq!(healthcheck(&["--addr", &public], &[]).await, Some(1));
    app.stop().await;
    assert_eq!(healthcheck(&["--addr", &internal, "--timeout", "1s"], &[]).await, Some(1), "nothing listens");
}
