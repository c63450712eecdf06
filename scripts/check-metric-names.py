#!/usr/bin/env python3
"""Check that every pgw_relay_* metric referenced by the alerts and the dashboard
is exported by pgw-relay.

Usage:
    scripts/check-metric-names.py EXPOSITION
        [--rules deploy/base/prometheusrule.yaml]
        [--dashboard deploy/dashboards/pgw-relay.json]

EXPOSITION is a file holding Prometheus text exposition (a saved /metrics
response), "-" for standard input, or an http(s):// URL such as
http://127.0.0.1:9090/metrics.

Names are taken from the PromQL expressions and all other string values of the
PrometheusRule and the Grafana dashboard (not from YAML comments). Histogram
suffixes _bucket/_count/_sum are reduced to the family name. A referenced name
is found when the exposition has it as a metric family (# TYPE / # HELP) or as a
sample name. Note that a labelled metric appears in the exposition only once
one of its label sets has been created, so run this against an instance whose
counters are initialised (or that has seen traffic).

Exit status: 0 when every name is present, 1 when some are missing (listed on
stderr), 2 on usage or read errors.
"""

import argparse
import json
import os
import re
import sys
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RULES = os.path.join(REPO, "deploy", "base", "prometheusrule.yaml")
DEFAULT_DASHBOARD = os.path.join(REPO, "deploy", "dashboards", "pgw-relay.json")

# A metric name starting with pgw_relay_, not part of a longer identifier or of
# a recording-rule name (which would contain ':').
NAME_RE = re.compile(r"(?<![A-Za-z0-9_:])pgw_relay_[A-Za-z0-9_]*[A-Za-z0-9]")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def strings_in(node):
    """Yield every string value (and key) of a parsed YAML/JSON document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str):
                yield k
            yield from strings_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings_in(v)


def load_rules(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml  # PyYAML
    except ImportError:
        # Fallback: the raw text without comment lines.
        return [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return list(strings_in(list(yaml.safe_load_all(text))))


def load_dashboard(path):
    with open(path, encoding="utf-8") as f:
        return list(strings_in(json.load(f)))


def normalise(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def referenced_names(strings):
    names = set()
    for s in strings:
        names.update(NAME_RE.findall(s))
    return names


def read_exposition(source):
    if source == "-":
        return sys.stdin.read()
    if source.startswith(("http://", "https://")):
        req = urllib.request.Request(source, headers={"Accept": "text/plain"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read().decode("utf-8", "replace")
    with open(source, encoding="utf-8") as f:
        return f.read()


def exported_names(text):
    """Metric family names and sample names (with histogram suffixes reduced)."""
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                names.add(parts[2])
            continue
        m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if m:
            names.add(m.group(0))
            names.add(normalise(m.group(0)))
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exposition", help="file, '-' or http(s) URL of a /metrics response")
    ap.add_argument("--rules", default=DEFAULT_RULES, help="PrometheusRule YAML (default: %(default)s)")
    ap.add_argument("--dashboard", default=DEFAULT_DASHBOARD, help="Grafana dashboard JSON (default: %(default)s)")
    args = ap.parse_args(argv)

    try:
        refs_rules = referenced_names(load_rules(args.rules))
        refs_dash = referenced_names(load_dashboard(args.dashboard))
        text = read_exposition(args.exposition)
    except Exception as exc:  # noqa: BLE001 - report any read error plainly
        print(f"check-metric-names: {exc}", file=sys.stderr)
        return 2

    wanted = {}
    for name in refs_rules:
        wanted.setdefault(normalise(name), set()).add("rules")
    for name in refs_dash:
        wanted.setdefault(normalise(name), set()).add("dashboard")
    if not wanted:
        print("check-metric-names: no pgw_relay_* names found in rules/dashboard", file=sys.stderr)
        return 2

    have = exported_names(text)
    missing = sorted(n for n in wanted if n not in have)
    print(f"checked {len(wanted)} metric names from {os.path.relpath(args.rules)} and "
          f"{os.path.relpath(args.dashboard)} against {args.exposition}")
    if missing:
        print(f"missing from the exposition ({len(missing)}):", file=sys.stderr)
        for n in missing:
            print(f"  {n}  (used in {', '.join(sorted(wanted[n]))})", file=sys.stderr)
        return 1
    print("all referenced metric names are exported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
