//! Who this process is when it holds a lease: the outbox relay's event claims and the
//! reconciler's invoice leases name their holder the same way.

/// `<hostname>-<pid>-<8 random hex digits>`: unique per call, so every relay or reconciler (even
/// several in one process) holds its leases under its own name.
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "pgw-relay".to_string());
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[24..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_are_unique_and_shaped() {
        let a = owner_id();
        let b = owner_id();
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())));
    }
}
