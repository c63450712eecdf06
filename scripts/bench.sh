#!/usr/bin/env bash
# The performance targets of docs/benchmark.md, measured with the project's own commands on this
# machine, each RUNS times (default 3), and summarised as medians against the targets:
#
#   scripts/bench.sh                 # everything, three runs each: about 8 minutes on 2 cores
#   RUNS=1 SECONDS_EACH=2 scripts/bench.sh   # a quick look (fewer, shorter runs)
#
# 1. pgbench -N (32 clients) on the same PostgreSQL server: its transactions/s is the
#    reference for the PostgreSQL target.
# 2. the store alone (`pgw-bench store-writes`), SQLite and PostgreSQL.
# 3. notifications, closed loop, 64 in flight, publisher on: capacity per store.
# 4. at half that capacity with `--broker`: p99 accept latency, accept -> consumer p99, and the
#    exactly-once check.
# 5. PostgreSQL again with two replicas of the service on the one database: the second measured
#    point of the capacity model in docs/benchmark.md.
#
# Needs the PostgreSQL server of PGW_BENCH_POSTGRES_URL (default: postgres://postgres@127.0.0.1:5432/test;
# a role that may create databases) and RabbitMQ on 127.0.0.1:5672. Run it on an otherwise idle
# machine: every figure shares the CPUs with whatever else runs. The JSON of every run is kept in
# target/bench/<time>/.

set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
# Each load runs about this long at the rates of this machine (counts are derived from it).
SECONDS_EACH=${SECONDS_EACH:-8}
PG_URL=${PGW_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
PGBENCH_DB=pgw_bench_pgbench
OUT=target/bench/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

cargo build --release --locked --bin pgw-bench >&2
B=target/release/pgw-bench

say() { printf '\n== %s\n' "$*" >&2; }

say "pgbench -N, 32 clients, $((SECONDS_EACH * 2)) s (database $PGBENCH_DB on the same server)"
admin_url=${PG_URL%/*}
psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $PGBENCH_DB" >/dev/null
psql -q "$PG_URL" -c "CREATE DATABASE $PGBENCH_DB" >/dev/null
pgbench -q -i -s 10 "$admin_url/$PGBENCH_DB" >/dev/null 2>&1
for i in $(seq "$RUNS"); do
    pgbench -n -N -c 32 -j 2 -T $((SECONDS_EACH * 2)) "$admin_url/$PGBENCH_DB" 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tee "$OUT/pgbench-$i.txt" >&2
done
psql -q "$PG_URL" -c "DROP DATABASE $PGBENCH_DB" >/dev/null

for store in sqlite postgres; do
    count=$([ $store = sqlite ] && echo $((SECONDS_EACH * 6000)) || echo $((SECONDS_EACH * 2500)))
    say "store alone, $store"
    for i in $(seq "$RUNS"); do
        $B store-writes --store $store --count $count --concurrency 64 --json >"$OUT/store-$store-$i.json"
        python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["writes"]["per_second"]))' \
            "$OUT/store-$store-$i.json" >&2
    done
    count=$([ $store = sqlite ] && echo $((SECONDS_EACH * 6000)) || echo $((SECONDS_EACH * 2000)))
    say "notifications, $store, closed loop, 64 in flight"
    for i in $(seq "$RUNS"); do
        $B notifications --store $store --count $count --concurrency 64 --json >"$OUT/closed-$store-$i.json"
        python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["notifications"]["per_second"]))' \
            "$OUT/closed-$store-$i.json" >&2
    done
    half=$(python3 - "$OUT" "$store" <<'EOF'
import json, statistics, sys, glob
runs = [json.load(open(f))["notifications"]["per_second"] for f in glob.glob(f"{sys.argv[1]}/closed-{sys.argv[2]}-*.json")]
print(int(statistics.median(runs) / 2))
EOF
)
    say "notifications, $store, fixed $half/s (half the capacity), with the consumer"
    for i in $(seq "$RUNS"); do
        $B notifications --store $store --count $((half * SECONDS_EACH)) --concurrency 64 --rate "$half" --broker --json \
            >"$OUT/half-$store-$i.json"
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["notifications"]["latency"]["p99_ms"], r["broker"]["accept_to_consumer"]["p99_ms"])' \
            "$OUT/half-$store-$i.json" >&2
    done
done

say "notifications, postgres, closed loop, 64 in flight, 2 replicas on the one database (capacity model)"
for i in $(seq "$RUNS"); do
    $B notifications --store postgres --count $((SECONDS_EACH * 2000)) --concurrency 64 --replicas 2 --json \
        >"$OUT/replicas2-postgres-$i.json"
    python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["notifications"]["per_second"]))' \
        "$OUT/replicas2-postgres-$i.json" >&2
done

python3 - "$OUT" <<'EOF'
import glob, json, statistics, sys
out = sys.argv[1]
med = statistics.median
def runs(pattern):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{pattern}"))]
pgbench = med([float(open(f).read()) for f in glob.glob(f"{out}/pgbench-*.txt")])
rows = []
def check(name, value, target, ok, unit=""):
    rows.append((name, value, target, "met" if ok else "NOT met", unit))
for store in ["sqlite", "postgres"]:
    alone = med([r["writes"]["per_second"] for r in runs(f"store-{store}-*.json")])
    closed = runs(f"closed-{store}-*.json")
    rate = med([r["notifications"]["per_second"] for r in closed])
    half = runs(f"half-{store}-*.json")
    p99 = med([r["notifications"]["latency"]["p99_ms"] for r in half])
    consumer = med([r["broker"]["accept_to_consumer"]["p99_ms"] for r in half])
    once = all(r["broker"]["exactly_once"] for r in half)
    errors = sum(sum(r["notifications"]["errors"].values()) for r in closed + half)
    if store == "sqlite":
        check("SQLite accepted/s (64 in flight)", f"{rate:,.0f}", ">= 9,000 and >= 0.9 x store alone", rate >= 9000 and rate >= 0.9 * alone)
        print(f"SQLite: store alone {alone:,.0f}/s; accepted/store alone = {rate / alone:.2f}")
    else:
        check("PostgreSQL accepted/s (64 in flight)", f"{rate:,.0f}", ">= 0.75 x pgbench -N", rate >= 0.75 * pgbench)
        print(f"PostgreSQL: pgbench -N {pgbench:,.0f} tps, store alone {alone:,.0f}/s; accepted/pgbench = {rate / pgbench:.2f}")
    check(f"{store} p99 accept at half capacity", f"{p99:.1f} ms", "<= 10 ms", p99 <= 10)
    check(f"{store} accept -> consumer p99 at half capacity", f"{consumer:.1f} ms", "<= 50 ms", consumer <= 50)
    check(f"{store} nothing lost or duplicated, no errors", "yes" if once and errors == 0 else "no", "yes", once and errors == 0)
    cpu = closed[len(closed) // 2]["notifications"]["cpu_micros_per_request"]
    print(f"{store}: CPU µs per notification (middle run): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items()) if v >= 0.5))
# Capacity model check: the same PostgreSQL load through one replica and through two.
for name, pattern in [("1 replica", "closed-postgres-*.json"), ("2 replicas", "replicas2-postgres-*.json")]:
    rs = runs(pattern)
    wal = med([r["postgres_wal_bytes_per_notification"] for r in rs])
    rate = med([r["notifications"]["per_second"] for r in rs])
    commits = med([r["postgres_commits_per_notification"] for r in rs])
    pg = med([r["notifications"]["cpu_micros_per_request"].get("postgresql", 0) for r in rs])
    total = med([sum(r["notifications"]["cpu_micros_per_request"].values()) for r in rs])
    print(f"PostgreSQL, {name}: {rate:,.0f}/s, {commits:.3f} commits and {wal:,.0f} WAL bytes per notification, "
          f"PostgreSQL {pg:.0f} µs and everything {total:.0f} µs of CPU per notification (medians)")
print()
print(f"{'measure':50} {'median':>12}  {'target':34} result")
for name, value, target, result, _ in rows:
    print(f"{name:50} {value:>12}  {target:34} {result}")
print(f"\nruns kept in {out}")
EOF
