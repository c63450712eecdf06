//! Where CPU time went during a phase: this process's threads grouped by name (Linux
//! `/proc/self/task`), and the whole machine (`/proc/stat`), so a phase can be read as "the HTTP
//! workers used 0.9 cores, the load generator 0.6, other processes 0.1". A thread that ends
//! during the phase is not counted (its time shows under "others"). The database and broker
//! servers on the same machine are counted by process name (`postgres`, RabbitMQ's `beam.smp`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Thread-name prefixes (as the kernel truncates them, 15 bytes) and the group they belong to.
const GROUPS: &[(&str, &str)] = &[
    ("actix-server wo", "http workers"),
    ("actix-server ac", "http acceptors"),
    ("relay-rt", "relay runtime"),
    ("sqlite-writer", "sqlite writer"),
    ("sqlx-sqlite-wor", "sqlite readers"),
    ("lapin-io-loop", "amqp io"),
    ("bench-load", "load generator"),
];

/// Process names (`comm`, as the kernel truncates them) of the servers the service talks to.
const SERVERS: &[(&str, &str)] = &[("postgres", "postgresql"), ("beam.smp", "rabbitmq")];

/// Name of the runtime that runs the service (store writer, pools, background tasks).
pub const RELAY_THREAD_NAME: &str = "relay-rt";
/// Name of the runtime that runs the HTTP client and the broker consumer.
pub const LOAD_THREAD_NAME: &str = "bench-load";

/// CPU counters at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    /// Per thread id: (group, user ticks, system ticks).
    threads: BTreeMap<u32, (&'static str, u64, u64)>,
    /// Per server process id: (server, user + system ticks).
    servers: BTreeMap<u32, (&'static str, u64)>,
    machine: Option<MachineTicks>,
}

#[derive(Debug, Clone, Copy)]
struct MachineTicks {
    busy: u64,
    idle: u64,
    iowait: u64,
}

/// CPU use over a phase, in cores (1.0 = one core fully busy).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub wall_seconds: f64,
    pub cpus: usize,
    /// This process, per thread group.
    pub process: BTreeMap<String, f64>,
    /// The part of `process` spent in the kernel (system calls, wake-ups, I/O).
    pub process_kernel: BTreeMap<String, f64>,
    pub process_total: f64,
    /// Every process on the machine, busy.
    pub machine_busy: f64,
    /// Busy outside this process (other work on a shared machine).
    pub others: f64,
    /// The part of `others` used by PostgreSQL and RabbitMQ on this machine, by server.
    pub servers: BTreeMap<String, f64>,
    /// Idle while some task waited for I/O.
    pub iowait: f64,
}

impl Snapshot {
    /// Reads the counters now. Missing `/proc` files give an empty snapshot, not an error.
    pub fn take() -> Snapshot {
        let mut threads = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc/self/task") {
            for entry in entries.flatten() {
                let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) {
                    if let Some((name, user, system)) = parse_thread_stat(&text) {
                        threads.insert(tid, (group_of(&name), user, system));
                    }
                }
            }
        }
        let mut servers = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) {
                    if let Some((name, user, system)) = parse_thread_stat(&text) {
                        if let Some((_, server)) = SERVERS.iter().find(|(comm, _)| name.starts_with(comm)) {
                            servers.insert(pid, (*server, user + system));
                        }
                    }
                }
            }
        }
        let machine = std::fs::read_to_string("/proc/stat").ok().and_then(|t| parse_machine_stat(&t));
        Snapshot { at: Instant::now(), threads, servers, machine }
    }

    /// Use between `self` (earlier) and `later`.
    pub fn until(&self, later: &Snapshot) -> Usage {
        let wall = later.at.duration_since(self.at).max(Duration::from_millis(1)).as_secs_f64();
        let hz = ticks_per_second();
        let cores = |ticks: u64| ticks as f64 / hz / wall;
        let mut per_group: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (tid, (group, user, system)) in &later.threads {
            let (user_before, system_before) = self.threads.get(tid).map(|(_, u, s)| (*u, *s)).unwrap_or((0, 0));
            let entry = per_group.entry((*group).to_string()).or_default();
            entry.0 += user.saturating_sub(user_before);
            entry.1 += system.saturating_sub(system_before);
        }
        let process_ticks: u64 = per_group.values().map(|(u, s)| u + s).sum();
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let (machine_busy, iowait) = match (self.machine, later.machine) {
            (Some(a), Some(b)) => {
                let total = (b.busy + b.idle).saturating_sub(a.busy + a.idle).max(1) as f64;
                let share = |ticks: u64| ticks as f64 / total * cpus as f64;
                (share(b.busy.saturating_sub(a.busy)), share(b.iowait.saturating_sub(a.iowait)))
            }
            _ => (0.0, 0.0),
        };
        let process_total = cores(process_ticks);
        let mut servers: BTreeMap<String, f64> = BTreeMap::new();
        for (pid, (server, ticks)) in &later.servers {
            let before = self.servers.get(pid).map(|(_, t)| *t).unwrap_or(0);
            *servers.entry((*server).to_string()).or_default() += cores(ticks.saturating_sub(before));
        }
        Usage {
            wall_seconds: wall,
            cpus,
            process: per_group.iter().map(|(g, (u, s))| (g.clone(), cores(u + s))).collect(),
            process_kernel: per_group.iter().map(|(g, (_, s))| (g.clone(), cores(*s))).collect(),
            process_total,
            machine_busy,
            others: (machine_busy - process_total).max(0.0),
            servers,
            iowait,
        }
    }
}

impl Usage {
    /// One line: "http workers 0.91 (kernel 0.20), … | others 0.10, iowait 0.02 (cores, of 2)".
    pub fn line(&self) -> String {
        let mut parts: Vec<String> = self
            .process
            .iter()
            .filter(|(_, c)| **c >= 0.005)
            .map(|(g, c)| format!("{g} {c:.2} (kernel {:.2})", self.process_kernel.get(g).copied().unwrap_or(0.0)))
            .collect();
        if parts.is_empty() {
            parts.push("none".into());
        }
        let servers: Vec<String> = self.servers.iter().map(|(s, c)| format!("{s} {c:.2}")).collect();
        format!(
            "{} | others {:.2} ({}), iowait {:.2} (cores, of {})",
            parts.join(", "),
            self.others,
            if servers.is_empty() { "no server seen".to_string() } else { servers.join(", ") },
            self.iowait,
            self.cpus
        )
    }

    /// CPU microseconds per operation of each part, at `per_second` operations per second: this
    /// process's thread groups, the servers, and the rest of the machine (`other processes`).
    pub fn micros_per_op(&self, per_second: f64) -> BTreeMap<String, f64> {
        let us = |cores: f64| if per_second > 0.0 { cores * 1e6 / per_second } else { 0.0 };
        let mut parts: BTreeMap<String, f64> = self.process.iter().map(|(g, c)| (g.clone(), us(*c))).collect();
        let servers: f64 = self.servers.values().sum();
        for (server, cores) in &self.servers {
            parts.insert(server.clone(), us(*cores));
        }
        parts.insert("other processes".into(), us((self.others - servers).max(0.0)));
        parts
    }

    /// One line of [`Usage::micros_per_op`]: "http workers 41, sqlite writer 104, … (µs)".
    pub fn micros_line(&self, per_second: f64) -> String {
        let parts: Vec<String> = self
            .micros_per_op(per_second)
            .iter()
            .filter(|(_, us)| **us >= 0.5)
            .map(|(part, us)| format!("{part} {us:.0}"))
            .collect();
        let total: f64 = self.micros_per_op(per_second).values().sum();
        format!("{} | total {total:.0} (CPU µs per operation)", parts.join(", "))
    }
}

/// The machine a run was made on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
}

impl Machine {
    /// From `/proc/cpuinfo` and `/proc/meminfo` (empty fields where they are unreadable).
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            memory_gib: kib / 1024.0 / 1024.0,
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} cpus ({}), {:.1} GiB", self.cpus, self.cpu_model, self.memory_gib)
    }
}

fn group_of(name: &str) -> &'static str {
    GROUPS.iter().find(|(prefix, _)| name.starts_with(prefix)).map(|(_, g)| *g).unwrap_or("other threads")
}

/// `(comm, utime, stime)` from a `/proc/<pid>/task/<tid>/stat` line.
fn parse_thread_stat(text: &str) -> Option<(String, u64, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // Fields after the name start at `state` (field 3); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime, stime))
}

fn parse_machine_stat(text: &str) -> Option<MachineTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(MachineTicks {
        busy: get(0) + get(1) + get(2) + get(5) + get(6) + get(7),
        idle: get(3) + get(4),
        iowait: get(4),
    })
}

fn ticks_per_second() -> f64 {
    // USER_HZ is 100 on every Linux architecture this runs on.
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_thread_stat_line_with_spaces_in_the_name() {
        let line = "4242 (actix-server wo) S 1 2 3 0 -1 4194368 10 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        let (name, user, system) = parse_thread_stat(line).unwrap();
        assert_eq!(name, "actix-server wo");
        assert_eq!((user, system), (250, 50));
        assert_eq!(group_of(&name), "http workers");
        let odd = "7 (a) b (c)) R 1 2 3 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_thread_stat(odd).unwrap(), ("a) b (c)".to_string(), 7, 3));
    }

    #[test]
    fn parses_the_machine_line() {
        let t = parse_machine_stat("cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(t.busy, 161);
        assert_eq!(t.idle, 1020);
        assert_eq!(t.iowait, 20);
    }
}
