//! The published documents (docs/asyncapi.yaml, docs/openapi.json) are valid and describe what the
//! service does. The checking tools come from scripts/contract-tools.sh (scripts/test.sh runs it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/contract-tools.sh installed the tools.
pub fn contract_tools() -> PathBuf {
    let dir = std::env::var_os("PGW_RELAY_CONTRACT_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("pgw-relay/contract-tools")
    });
    assert!(
        dir.join("bin/st").exists(),
        "the document checking tools are not installed in {}: run scripts/contract-tools.sh",
        dir.display()
    );
    dir
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_asyncapi_document_is_valid_asyncapi_3_and_names_the_event_schemas() {
    let tools = contract_tools();
    let out = Command::new(tools.join("bin/python"))
        .current_dir(repo())
        .arg("scripts/check-asyncapi.py")
        .arg(tools.join("node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"))
        .arg("docs/asyncapi.yaml")
        .output()
        .expect("run check-asyncapi.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("6 event types, 0 problem(s)"), "{text}");
}
