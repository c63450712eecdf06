//! Every metric named by the shipped alerts and dashboard is one a running instance exports.

use crate::helpers::*;

fn referenced_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("pgw_relay_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let mut name = text[start..end].to_string();
        for suffix in ["_bucket", "_count", "_sum"] {
            if let Some(base) = name.strip_suffix(suffix) {
                name = base.to_string();
            }
        }
        if !names.contains(&name) {
            names.push(name);
        }
        i = end;
    }
    names
}

#[tokio::test]
async fn alerts_and_dashboard_reference_only_exported_metrics() {
    let root = env!("CARGO_MANIFEST_DIR");
    let rules = std::fs::read_to_string(format!("{root}/deploy/base/prometheusrule.yaml")).unwrap();
    let dashboard = std::fs::read_to_string(format!("{root}/deploy/dashboards/pgw-relay.json")).unwrap();
    let mut names = referenced_names(&rules);
    for n in referenced_names(&dashboard) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    assert!(names.len() >= 10, "alerts and dashboard reference the service's metrics: {names:?}");

    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    // One request so the HTTP histogram has a series.
    app.post_notification_body("not json").await;
    let exported = app.metrics().await;
    let missing: Vec<&String> =
        names.iter().filter(|n| !exported.lines().any(|l| l.starts_with(&format!("# TYPE {n} ")))).collect();
    assert!(missing.is_empty(), "referenced but not exported: {missing:?}");
    app.stop().await;
}
