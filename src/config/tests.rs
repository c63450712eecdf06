//! Loading, validation and rendering of the configuration.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::load::EMBEDDED_DEFAULTS;
use super::*;

fn sources() -> Sources {
    Sources { dir: Some(PathBuf::from("/nonexistent")), env_name: None, files: vec![], use_environment: false }
}

#[test]
fn embedded_defaults_load() {
    let cfg = load(&sources()).expect("defaults load");
    assert_eq!(cfg.settings.server.max_body_bytes, 65536);
    assert_eq!(cfg.settings.reconcile.grace, Duration::from_secs(300));
    assert_eq!(cfg.settings.broker.exchange, "pgw.payments");
    assert!(cfg.merchants.is_empty());
}

#[test]
fn bad_duration_names_the_key() {
    let err = load_with_overrides(&sources(), &[("reconcile.grace", "soon".into())]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("grace"), "{text}");
}

#[test]
fn bad_address_names_the_key() {
    let err = load_with_overrides(&sources(), &[("server.public_addr", "nowhere".into())]).unwrap_err();
    assert!(err.to_string().contains("server.public_addr"), "{err}");
}

#[test]
fn secrets_are_read_from_files_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("jt01");
    std::fs::write(&key_path, "s3cr3t-key-from-file\n").unwrap();
    let file = dir.path().join("extra.toml");
    std::fs::write(
        &file,
        format!(
            "[[merchants]]\nid = \"JT01\"\nsecret_key_file = \"{}\"\ntimezone = \"+07:00\"\n[database]\nurl = \"postgres://u:pw@127.0.0.1/db\"\n",
            key_path.display()
        ),
    )
    .unwrap();
    let mut src = sources();
    src.files.push(file);
    let cfg = load(&src).unwrap();
    assert_eq!(cfg.merchants[0].secret_key.expose_secret(), "s3cr3t-key-from-file");
    let shown = redacted(&cfg).to_string();
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(!shown.contains(":pw@"), "{shown}");
}

#[test]
fn an_unknown_key_is_an_error_naming_the_closest_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[merchants]]\nid = \"JT01\"\nsecret_key = \"k\"\nprevious_secret_key_flie = \"/k\"\n",
            "merchants[0].previous_secret_key_flie",
            Some("merchants[0].previous_secret_key_file"),
        ),
        ("[reconcile]\nmaxrps = 5\n", "reconcile.maxrps", Some("reconcile.max_rps")),
        ("[servr]\npublic_addr = \"127.0.0.1:1\"\n", "servr", Some("server")),
        ("[broker]\ncompletely_unrelated = 1\n", "broker.completely_unrelated", None),
    ];
    for (i, (toml, key, suggestion)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("{i}.toml"));
        std::fs::write(&file, toml).unwrap();
        let mut src = sources();
        src.files.push(file);
        match load(&src).unwrap_err() {
            ConfigError::Unknown { key: k, suggestion: s, .. } => {
                assert_eq!((k.as_str(), s.as_deref()), (key, suggestion), "{toml}");
            }
            other => panic!("{toml}: {other}"),
        }
    }
}

#[test]
fn every_effective_key_is_shown() {
    fn leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    leaves(v, &format!("{prefix}{k}."), out)
                }
            }
            _ => out.push(prefix.trim_end_matches('.').to_string()),
        }
    }
    let defaults: toml_probe::Table = toml_probe::parse(EMBEDDED_DEFAULTS);
    let shown = redacted(&load(&sources()).unwrap());
    for key in defaults {
        let mut v = &shown;
        for part in key.split('.') {
            v = &v[part];
        }
        assert!(!v.is_null(), "check-config does not show `{key}`");
    }
    let mut all = Vec::new();
    leaves(&shown, "", &mut all);
    assert!(all.contains(&"broker.poll_interval".to_string()), "{all:?}");
}

/// The `section.key` names of a flat TOML file such as `config/default.toml`.
mod toml_probe {
    pub type Table = Vec<String>;
    pub fn parse(text: &str) -> Table {
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with("[[") || line.starts_with('#') || line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
            } else if let Some((key, _)) = line.split_once('=') {
                keys.push(format!("{section}.{}", key.trim()));
            }
        }
        keys
    }
}

#[test]
fn merchant_without_key_is_rejected_by_key_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.toml");
    std::fs::write(&file, "[[merchants]]\nid = \"JT01\"\n").unwrap();
    let mut src = sources();
    src.files.push(file);
    let err = load(&src).unwrap_err();
    assert!(err.to_string().contains("merchants[0].secret_key"), "{err}");
}

#[test]
fn named_tokens_are_read_from_files_and_only_their_names_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("oncall");
    std::fs::write(&token_path, "oncall-token-from-file\n").unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        format!(
            "[internal_api]\ntokens = [\"plain-token-123\"]\n[[internal_api.named_tokens]]\nname = \"oncall\"\n\
             token_file = \"{}\"\n[[internal_api.named_tokens]]\nname = \"billing-job\"\ntoken = \"billing-token-456\"\n",
            token_path.display()
        ),
    )
    .unwrap();
    let mut src = sources();
    src.files.push(file);
    let cfg = load(&src).unwrap();
    let names: Vec<&str> = cfg.internal_tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["tokens[0]", "oncall", "billing-job"]);
    assert_eq!(cfg.internal_tokens[1].token.expose_secret(), "oncall-token-from-file");
    let shown = format!("{} {:?}", redacted(&cfg), cfg.internal_tokens);
    for secret in ["plain-token-123", "oncall-token-from-file", "billing-token-456"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn bad_values_name_the_key() {
    let cases = [
        ("[[internal_api.named_tokens]]\nname = \"a b\"\ntoken = \"long-enough-token\"\n", "named_tokens[0].name"),
        ("[[internal_api.named_tokens]]\nname = \"x\"\ntoken = \"short\"\n", "named_tokens[0].token"),
        ("[[internal_api.named_tokens]]\nname = \"x\"\n", "named_tokens[0].token"),
        (
            "[[internal_api.named_tokens]]\nname = \"x\"\ntoken = \"long-enough-1\"\n\
             [[internal_api.named_tokens]]\nname = \"x\"\ntoken = \"long-enough-2\"\n",
            "named_tokens[1].name",
        ),
        ("[retention]\nolder_than = \"10m\"\n", "retention.older_than"),
        ("[retention]\nbatch = 0\n", "retention.batch"),
        ("[database]\ngroup_writers = 0\n", "database.group_writers"),
        ("[broker]\ndead_letter_exchange = \"pgw.payments\"\n", "broker.dead_letter_exchange"),
    ];
    for (toml, key) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        let mut src = sources();
        src.files.push(file);
        let err = load(&src).unwrap_err();
        assert!(err.to_string().contains(key), "{toml}: {err}");
    }
}

#[test]
fn retention_and_queue_defaults() {
    let cfg = load(&sources()).unwrap();
    assert!(!cfg.settings.retention.enabled);
    assert_eq!(cfg.settings.retention.older_than, Duration::from_secs(90 * 86_400));
    assert_eq!(cfg.settings.broker.default_queue_type, QueueType::Quorum);
    assert!(cfg.settings.broker.dead_letter_exchange.is_empty());
}
