#!/usr/bin/env python3
"""Structural and policy checks for the rendered pgw-relay manifests.

Used by scripts/check-deploy.sh; needs PyYAML (and Python >= 3.11 or the tomli package).

  check-manifests.py objects RENDERED.yaml --core-out CORE.yaml --rules-out RULES.yaml [--overlay]
      RENDERED.yaml  output of `kubectl kustomize deploy/<base|overlays/x>`
      --core-out     built-in kinds only, for `kubernetes-validate`
      --rules-out    the PrometheusRule's spec, for `promtool check rules`
      --overlay      also apply the checks that only hold for a deployable
                     overlay (namespace, Prometheus release label, image tag)

  check-manifests.py compose COMPOSE.yaml
      the local stack is wired as README describes: four services, pgw-relay
      on the compose profile with PostgreSQL and RabbitMQ, its health check
      is `pgw-relay healthcheck`

  check-manifests.py dashboard DASHBOARD.json --promql-out RULES.yaml
      --promql-out   every panel/variable query as a recording rule (Grafana
                     variables substituted), for `promtool check rules`

Prints every failed check (every check with CHECK_DEPLOY_VERBOSE=1) and a
count; exits 1 if any check failed.
"""

import argparse
import json
import os
import re
import sys

import yaml

try:
    import tomllib  # Python >= 3.11
except ImportError:  # pragma: no cover - older Pythons with the tomli backport
    import tomli as tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNBOOK = os.path.join(REPO, "deploy", "RUNBOOK.md")

CRD_GROUP = "monitoring.coreos.com/"
KNOWN_CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
SEVERITIES = {"critical", "warning", "info"}
DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PUBLIC_PATHS = {"/2c2p/backend-notification", "/2c2p/frontend-return"}
SECRET_ENV = {
    "PGW_RELAY__DATABASE__URL",
    "PGW_RELAY__BROKER__URL",
    "PGW_RELAY__INTERNAL_API__TOKENS",
}
MERCHANT_KEY_DIR = "/run/secrets/merchants/"
# Each passing check is listed only with CHECK_DEPLOY_VERBOSE=1; failures always.
VERBOSE = os.environ.get("CHECK_DEPLOY_VERBOSE") == "1"


class Checker:
    def __init__(self, prefix):
        self.prefix = prefix
        self.failed = 0
        self.passed = 0

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            if VERBOSE:
                print(f"  ok   {self.prefix}{what}")
        else:
            self.failed += 1
            extra = f": {detail}" if detail else ""
            print(f"  FAIL {self.prefix}{what}{extra}")
        return bool(cond)


def get(d, *path, default=None):
    for p in path:
        if isinstance(d, dict):
            d = d.get(p)
        elif isinstance(d, list) and isinstance(p, int) and -len(d) <= p < len(d):
            d = d[p]
        else:
            return default
        if d is None:
            return default
    return d


def matches(selector, labels):
    """matchLabels-style selector (dict) against a label dict."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def one(objs, kind, name=None):
    found = [o for o in objs if o.get("kind") == kind and (name is None or get(o, "metadata", "name") == name)]
    return found[0] if len(found) == 1 else None


def runbook_anchors():
    anchors = set()
    try:
        with open(RUNBOOK, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^#{2,4}\s+(.+?)\s*$", line)
                if m:
                    a = re.sub(r"[^a-z0-9 _-]", "", m.group(1).lower()).replace(" ", "-")
                    anchors.add(a)
    except FileNotFoundError:
        pass
    return anchors


# --------------------------------------------------------------------------
# CRDs (no schema available offline): structural checks
# --------------------------------------------------------------------------

def check_servicemonitor(c, sm, objs, overlay):
    c.check(sm.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion monitoring.coreos.com/v1")
    c.check(get(sm, "metadata", "name"), "ServiceMonitor has metadata.name")
    sel = get(sm, "spec", "selector", "matchLabels", default={})
    c.check(isinstance(sel, dict) and sel, "ServiceMonitor spec.selector.matchLabels is set")
    eps = get(sm, "spec", "endpoints", default=[])
    c.check(isinstance(eps, list) and eps, "ServiceMonitor spec.endpoints is a non-empty list")
    allowed = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings",
               "metricRelabelings", "targetPort", "bearerTokenSecret", "authorization", "tlsConfig",
               "params", "followRedirects", "enableHttp2", "honorTimestamps", "filterRunning"}
    for i, ep in enumerate(eps or []):
        c.check(isinstance(ep.get("port"), str) and ep["port"], f"ServiceMonitor endpoint[{i}] has a named port")
        c.check(ep.get("path", "/metrics") == "/metrics", f"ServiceMonitor endpoint[{i}] path is /metrics")
        unknown = set(ep) - allowed
        c.check(not unknown, f"ServiceMonitor endpoint[{i}] has only known fields", f"unknown {sorted(unknown)}")
        for f in ("interval", "scrapeTimeout"):
            if f in ep:
                c.check(DURATION_RE.match(str(ep[f])), f"ServiceMonitor endpoint[{i}] {f} is a duration", ep[f])
    ns = get(sm, "metadata", "namespace")
    services = [o for o in objs if o.get("kind") == "Service" and get(o, "metadata", "namespace") == ns
                and matches(sel, get(o, "metadata", "labels", default={}))]
    c.check(len(services) == 1, "ServiceMonitor selector matches exactly one Service",
            f"matches {[get(s, 'metadata', 'name') for s in services]}")
    if len(services) == 1:
        svc = services[0]
        c.check(get(svc, "metadata", "name") == "pgw-relay-internal", "ServiceMonitor selects the internal Service",
                get(svc, "metadata", "name"))
        ports = {p.get("name"): p.get("port") for p in get(svc, "spec", "ports", default=[])}
        for i, ep in enumerate(eps or []):
            c.check(ep.get("port") in ports, f"ServiceMonitor endpoint[{i}] port '{ep.get('port')}' exists on the Service",
                    f"Service ports {sorted(ports)}")
            c.check(ports.get(ep.get("port")) == 9090, f"ServiceMonitor endpoint[{i}] scrapes port 9090")
    if overlay:
        c.check(get(sm, "metadata", "labels", "release"), "ServiceMonitor carries the Prometheus release label")


def check_prometheusrule(c, pr, overlay):
    c.check(pr.get("apiVersion") == "monitoring.coreos.com/v1", "PrometheusRule apiVersion monitoring.coreos.com/v1")
    c.check(get(pr, "metadata", "name"), "PrometheusRule has metadata.name")
    groups = get(pr, "spec", "groups", default=[])
    c.check(isinstance(groups, list) and groups, "PrometheusRule spec.groups is a non-empty list")
    names = [g.get("name") for g in groups]
    c.check(all(names) and len(set(names)) == len(names), "PrometheusRule group names are set and unique")
    anchors = runbook_anchors()
    alerts = []
    for g in groups:
        rules = g.get("rules")
        c.check(isinstance(rules, list) and rules, f"group {g.get('name')} has rules")
        for r in rules or []:
            name = r.get("alert") or r.get("record")
            c.check(bool(r.get("alert")) != bool(r.get("record")), f"rule {name}: exactly one of alert/record")
            c.check(isinstance(r.get("expr"), str) and r["expr"].strip(), f"rule {name}: has expr")
            if "for" in r:
                c.check(DURATION_RE.match(str(r["for"])), f"rule {name}: 'for' is a duration", r["for"])
            if r.get("alert"):
                alerts.append(name)
                c.check(get(r, "labels", "severity") in SEVERITIES, f"alert {name}: severity label",
                        get(r, "labels", "severity"))
                ann = r.get("annotations") or {}
                missing = [k for k in ("summary", "description", "runbook") if not ann.get(k)]
                c.check(not missing, f"alert {name}: summary/description/runbook annotations", f"missing {missing}")
                anchor = name.lower()
                c.check(f"RUNBOOK.md#{anchor}" in ann.get("runbook", ""), f"alert {name}: runbook points to RUNBOOK.md#{anchor}")
                c.check(anchor in anchors, f"alert {name}: deploy/RUNBOOK.md has a '{name}' section")
    c.check(len(alerts) == len(set(alerts)), "alert names are unique")
    if overlay:
        c.check(get(pr, "metadata", "labels", "release"), "PrometheusRule carries the Prometheus release label")


# --------------------------------------------------------------------------
# Built-in kinds: pgw-relay's deployment policy
# --------------------------------------------------------------------------

def check_pod_security(c, what, pod_spec, container):
    psc = pod_spec.get("securityContext") or {}
    csc = container.get("securityContext") or {}
    c.check(pod_spec.get("automountServiceAccountToken") is False, f"{what}: automountServiceAccountToken false")
    c.check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532,
            f"{what}: pod runs as non-root user 65532")
    c.check(get(psc, "seccompProfile", "type") == "RuntimeDefault" or get(csc, "seccompProfile", "type") == "RuntimeDefault",
            f"{what}: seccompProfile RuntimeDefault")
    c.check(csc.get("readOnlyRootFilesystem") is True, f"{what}: readOnlyRootFilesystem")
    c.check(csc.get("allowPrivilegeEscalation") is False, f"{what}: allowPrivilegeEscalation false")
    c.check(get(csc, "capabilities", "drop") == ["ALL"], f"{what}: capabilities drop ALL")
    c.check(csc.get("runAsNonRoot", True) is not False and csc.get("runAsUser", 65532) == 65532,
            f"{what}: container does not override the user")
    mounts = {m.get("mountPath"): m for m in container.get("volumeMounts") or []}
    vols = {v.get("name"): v for v in pod_spec.get("volumes") or []}
    tmp = mounts.get("/tmp")
    c.check(tmp and "emptyDir" in vols.get(tmp.get("name"), {}), f"{what}: emptyDir mounted at /tmp")
    cfg = mounts.get("/app/config")
    c.check(cfg and "configMap" in vols.get(cfg.get("name"), {}), f"{what}: ConfigMap mounted at /app/config")
    keys = mounts.get("/run/secrets/merchants")
    c.check(keys and "secret" in vols.get(keys.get("name"), {}), f"{what}: merchant keys Secret mounted at /run/secrets/merchants")
    env = {e.get("name"): e for e in container.get("env") or []}
    for name in sorted(SECRET_ENV):
        c.check(get(env.get(name, {}), "valueFrom", "secretKeyRef", "name"), f"{what}: {name} from a Secret")
    plain = [n for n, e in env.items() if "value" in e and re.search(r"URL|TOKEN|SECRET|PASSWORD|KEY", n)
             and n not in ("PGW_RELAY_ENV",)]
    c.check(not plain, f"{what}: no secret-looking env var has a literal value", plain)
    return vols, mounts, env


def check_objects(c, objs, overlay):
    kinds = [o.get("kind") for o in objs]
    c.check("Secret" not in kinds, "no Secret object is rendered (Secrets are created out of band)")

    dep = one(objs, "Deployment", "pgw-relay")
    if not c.check(dep, "exactly one Deployment pgw-relay"):
        return
    ns = get(dep, "metadata", "namespace")
    if overlay:
        c.check(ns, "objects have a namespace")
        c.check(all(get(o, "metadata", "namespace") == ns for o in objs if o.get("kind") != "Namespace"),
                "all namespaced objects are in the same namespace", ns)
    pod = get(dep, "spec", "template", default={})
    pod_labels = get(pod, "metadata", "labels", default={})
    spec = pod.get("spec") or {}
    c.check(matches(get(dep, "spec", "selector", "matchLabels"), pod_labels), "Deployment selector matches its pod labels")
    replicas = get(dep, "spec", "replicas", default=1)
    c.check(replicas >= 2, "Deployment has 2+ replicas", replicas)
    c.check(spec.get("terminationGracePeriodSeconds", 30) >= 45, "terminationGracePeriodSeconds >= 45")
    ctr = next((x for x in spec.get("containers") or [] if x.get("name") == "pgw-relay"), None)
    if not c.check(ctr, "container pgw-relay exists"):
        return
    c.check(not ctr.get("command") and not ctr.get("args"), "service container uses the image entrypoint (serve)")
    ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports") or []}
    c.check(ports == {"public": 8080, "internal": 9090}, "container ports public 8080 / internal 9090", ports)
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        p = ctr.get(probe) or {}
        c.check(get(p, "httpGet", "path") == path and get(p, "httpGet", "port") in ("internal", 9090),
                f"{probe} GET {path} on the internal port")
    pre = get(ctr, "lifecycle", "preStop", "sleep", "seconds")
    c.check(isinstance(pre, int) and 1 <= pre < spec.get("terminationGracePeriodSeconds", 30),
            "preStop sleep shorter than the grace period", pre)
    res = ctr.get("resources") or {}
    c.check(get(res, "requests", "cpu") and get(res, "requests", "memory") and get(res, "limits", "memory"),
            "resources: cpu/memory requests and a memory limit")
    vols, mounts, env = check_pod_security(c, "Deployment", spec, ctr)
    image = ctr.get("image", "")
    if overlay:
        c.check(":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"),
                "image has an explicit tag (not latest)", image)

    # Config file selected by PGW_RELAY_ENV in the mounted ConfigMap.
    env_name = get(env, "PGW_RELAY_ENV", "value")
    c.check(env_name, "PGW_RELAY_ENV is set", env_name)
    cm_name = get(vols.get(get(mounts.get("/app/config", {}), "name")), "configMap", "name")
    cm = one(objs, "ConfigMap", cm_name)
    cfg = None
    if c.check(cm and f"{env_name}.toml" in (cm.get("data") or {}),
               f"ConfigMap {cm_name} has {env_name}.toml"):
        try:
            cfg = tomllib.loads(cm["data"][f"{env_name}.toml"])
            c.check(True, f"{env_name}.toml parses as TOML")
        except tomllib.TOMLDecodeError as exc:
            c.check(False, f"{env_name}.toml parses as TOML", exc)
    if cfg is not None:
        c.check(not get(cfg, "database", "url"), "config: database.url not in the file (comes from a Secret)")
        c.check(not get(cfg, "broker", "url"), "config: broker.url not in the file (comes from a Secret)")
        c.check(not get(cfg, "internal_api", "tokens"), "config: internal_api.tokens not in the file")
        merchants = cfg.get("merchants") or []
        c.check(merchants, "config: at least one [[merchants]] entry")
        for m in merchants:
            mid = m.get("id")
            c.check(not m.get("secret_key") and not m.get("previous_secret_key"),
                    f"config: merchant {mid} has no inline secret key")
            c.check(str(m.get("secret_key_file", "")).startswith(MERCHANT_KEY_DIR),
                    f"config: merchant {mid} secret_key_file under {MERCHANT_KEY_DIR}")
            if m.get("previous_secret_key_file"):
                c.check(str(m["previous_secret_key_file"]).startswith(MERCHANT_KEY_DIR),
                        f"config: merchant {mid} previous_secret_key_file under {MERCHANT_KEY_DIR}")

    # Services.
    for name, port_name, port in (("pgw-relay-public", "public", 8080), ("pgw-relay-internal", "internal", 9090)):
        svc = one(objs, "Service", name)
        if c.check(svc, f"Service {name} exists"):
            sports = get(svc, "spec", "ports", default=[])
            c.check(len(sports) == 1 and sports[0].get("name") == port_name and sports[0].get("port") == port
                    and sports[0].get("targetPort") in (port_name, port),
                    f"Service {name} exposes only {port} named '{port_name}'")
            c.check(matches(get(svc, "spec", "selector"), pod_labels), f"Service {name} selects the service pods")

    # Ingress: the two 2C2P paths only, exact, to the public Service.
    ing = one(objs, "Ingress", "pgw-relay")
    if c.check(ing, "Ingress pgw-relay exists"):
        paths = [p for r in get(ing, "spec", "rules", default=[]) for p in get(r, "http", "paths", default=[])]
        c.check({p.get("path") for p in paths} == PUBLIC_PATHS and len(paths) == len(PUBLIC_PATHS),
                "Ingress publishes only the two /2c2p/ paths", [p.get("path") for p in paths])
        c.check(all(p.get("pathType") == "Exact" for p in paths), "Ingress paths are pathType Exact")
        c.check(all(get(p, "backend", "service", "name") == "pgw-relay-public"
                    and get(p, "backend", "service", "port", "name") in ("public", None)
                    and get(p, "backend", "service", "port", "number") in (8080, None) for p in paths),
                "Ingress routes only to the public Service")
        ann = get(ing, "metadata", "annotations", default={})
        c.check(ann.get("nginx.ingress.kubernetes.io/proxy-body-size") == "64k", "Ingress body size limit 64k")
        hosts = {r.get("host") for r in get(ing, "spec", "rules", default=[])}
        tls_hosts = {h for t in get(ing, "spec", "tls", default=[]) for h in t.get("hosts", [])}
        c.check(hosts and hosts <= tls_hosts, "Ingress hosts are covered by TLS", hosts)
        if cfg is not None:
            for m in cfg.get("merchants") or []:
                for key in ("backend_return_url", "frontend_return_url"):
                    url = m.get(key, "")
                    host = re.sub(r"^https://([^/:?#]+).*$", r"\1", url)
                    c.check(url.startswith("https://") and host in hosts,
                            f"config: merchant {m.get('id')} {key} uses the Ingress host", url)

    # NetworkPolicy.
    np = one(objs, "NetworkPolicy", "pgw-relay")
    if c.check(np, "NetworkPolicy pgw-relay exists"):
        c.check(matches(get(np, "spec", "podSelector", "matchLabels"), pod_labels), "NetworkPolicy selects the service pods")
        c.check(set(get(np, "spec", "policyTypes", default=[])) == {"Ingress", "Egress"}, "NetworkPolicy restricts ingress and egress")
        rules = get(np, "spec", "ingress", default=[])
        by_port = {}
        for r in rules:
            for p in r.get("ports") or [{}]:
                by_port.setdefault(p.get("port"), []).extend(r.get("from") or [{"any": True}])
        c.check(set(by_port) == {8080, 9090}, "NetworkPolicy ingress only to 8080 and 9090", sorted(map(str, by_port)))
        for port in (8080, 9090):
            peers = by_port.get(port, [])
            c.check(peers and all("namespaceSelector" in p and "ipBlock" not in p and "any" not in p for p in peers),
                    f"NetworkPolicy ingress to {port} only from selected namespaces")
        eg_ports = {(p.get("protocol", "TCP"), p.get("port")) for r in get(np, "spec", "egress", default=[])
                    for p in r.get("ports") or []}
        need = {("UDP", 53), ("TCP", 5432), ("TCP", 5672), ("TCP", 5671), ("TCP", 443)}
        c.check(need <= eg_ports, "NetworkPolicy egress allows DNS, 5432, 5672/5671, 443", sorted(need - eg_ports))
        c.check(all(r.get("ports") for r in get(np, "spec", "egress", default=[])), "NetworkPolicy egress rules are port-restricted")

    # PDB / HPA.
    pdb = one(objs, "PodDisruptionBudget", "pgw-relay")
    if c.check(pdb, "PodDisruptionBudget exists"):
        c.check(matches(get(pdb, "spec", "selector", "matchLabels"), pod_labels), "PDB selects the service pods")
    hpa = one(objs, "HorizontalPodAutoscaler", "pgw-relay")
    if c.check(hpa, "HorizontalPodAutoscaler exists"):
        c.check(get(hpa, "spec", "scaleTargetRef", "kind") == "Deployment"
                and get(hpa, "spec", "scaleTargetRef", "name") == "pgw-relay", "HPA targets the Deployment")
        mn = get(hpa, "spec", "minReplicas", default=1)
        c.check(mn >= 2 and mn == replicas, "HPA minReplicas >= 2 and equal to the Deployment's replicas", f"{mn} vs {replicas}")
        c.check(get(hpa, "spec", "maxReplicas", default=0) >= mn, "HPA maxReplicas >= minReplicas")

    # Migration Job.
    jobs = [o for o in objs if o.get("kind") == "Job"]
    if c.check(len(jobs) == 1, "one migration Job"):
        job = jobs[0]
        jname = get(job, "metadata", "name", default="")
        jspec = get(job, "spec", "template", "spec", default={})
        jlabels = get(job, "spec", "template", "metadata", "labels", default={})
        jc = (jspec.get("containers") or [{}])[0]
        c.check(jc.get("args") == ["migrate"] and not jc.get("command"), "Job runs `pgw-relay migrate`")
        c.check(jc.get("image") == image, "Job uses the Deployment's image")
        c.check(jspec.get("restartPolicy") in ("Never", "OnFailure"), "Job restartPolicy Never/OnFailure")
        c.check(not matches(get(dep, "spec", "selector", "matchLabels"), jlabels),
                "Job pods are not selected by the Deployment/Services")
        c.check(len(jname) <= 63 and DNS_SUBDOMAIN_RE.match(jname), "Job name is a valid name (<= 63 chars)", jname)
        check_pod_security(c, "Job", jspec, jc)
        jenv = {e.get("name"): e for e in jc.get("env") or []}
        c.check(get(jenv, "PGW_RELAY_ENV", "value") == env_name, "Job uses the same PGW_RELAY_ENV", get(jenv, "PGW_RELAY_ENV", "value"))
        if overlay:
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            c.check(jname.endswith("-" + tag), "Job name carries the image tag", jname)
            for what, lbl in (("Deployment", get(dep, "metadata", "labels", default={})), ("pod", pod_labels),
                              ("Job", get(job, "metadata", "labels", default={}))):
                v = lbl.get("app.kubernetes.io/version", "")
                c.check(v == tag and LABEL_VALUE_RE.match(v) and len(v) <= 63,
                        f"{what} label app.kubernetes.io/version equals the image tag", v)


def cmd_objects(args):
    with open(args.rendered, encoding="utf-8") as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    c = Checker(f"[{args.label}] " if args.label else "")
    crds = [o for o in objs if str(o.get("apiVersion", "")).startswith(CRD_GROUP)]
    core = [o for o in objs if o not in crds]
    unknown = sorted({o.get("kind") for o in crds} - KNOWN_CRD_KINDS)
    c.check(not unknown, "only known CRD kinds (ServiceMonitor, PrometheusRule)", unknown)
    with open(args.core_out, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)

    sms = [o for o in crds if o.get("kind") == "ServiceMonitor"]
    prs = [o for o in crds if o.get("kind") == "PrometheusRule"]
    if c.check(len(sms) == 1, "one ServiceMonitor"):
        check_servicemonitor(c, sms[0], objs, args.overlay)
    if c.check(len(prs) == 1, "one PrometheusRule"):
        check_prometheusrule(c, prs[0], args.overlay)
        with open(args.rules_out, "w", encoding="utf-8") as f:
            yaml.safe_dump(prs[0]["spec"], f, sort_keys=False)
    check_objects(c, objs, args.overlay)
    print(f"  {c.passed} checks passed, {c.failed} failed")
    return 1 if c.failed else 0


def cmd_dashboard(args):
    c = Checker("[dashboard] ")
    try:
        with open(args.dashboard, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        c.check(False, "dashboard is valid JSON", exc)
        return 1
    c.check(True, "dashboard is valid JSON")
    inputs = {i.get("name"): i for i in dash.get("__inputs") or []}
    c.check(get(inputs, "DS_PROMETHEUS", "pluginId") == "prometheus", "__inputs declares DS_PROMETHEUS (prometheus)")
    c.check(dash.get("uid") and dash.get("title"), "dashboard has uid and title")

    panels = []

    def walk(ps):
        for p in ps or []:
            panels.append(p)
            walk(p.get("panels"))
    walk(dash.get("panels"))
    ids = [p.get("id") for p in panels]
    c.check(len(ids) == len(set(ids)), "panel ids are unique")
    exprs = []
    bad_ds = []
    for p in panels:
        if p.get("type") == "row":
            continue
        if get(p, "datasource", "uid") != "${DS_PROMETHEUS}":
            bad_ds.append(p.get("title"))
        for t in p.get("targets") or []:
            if get(t, "datasource", "uid", default="${DS_PROMETHEUS}") != "${DS_PROMETHEUS}":
                bad_ds.append(p.get("title"))
            if t.get("expr"):
                exprs.append((p.get("title"), t["expr"]))
    for v in get(dash, "templating", "list", default=[]):
        if v.get("type") == "query" and get(v, "datasource", "uid") != "${DS_PROMETHEUS}":
            bad_ds.append(f"variable {v.get('name')}")
    c.check(not bad_ds, "every panel, query and variable uses ${DS_PROMETHEUS}", bad_ds)
    c.check(exprs, "dashboard has PromQL queries", len(exprs))

    # Grafana variables -> concrete values so promtool can parse the queries.
    subst = [(r"\$__rate_interval|\$__interval|\$__range", "5m"), (r"\$\{?namespace\}?", "default")]
    rules = []
    for i, (title, e) in enumerate(exprs):
        for pat, val in subst:
            e = re.sub(pat, val, e)
        c.check("$" not in e, f"query in '{title}' uses only known variables", e)
        rules.append({"record": f"dashboard:query_{i}", "expr": e})
    with open(args.promql_out, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f, sort_keys=False)
    print(f"  {c.passed} checks passed, {c.failed} failed")
    return 1 if c.failed else 0


def cmd_compose(args):
    c = Checker("")
    with open(args.compose, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    s = doc.get("services") or {}
    c.check(set(s) == {"pgw-relay", "pgw-sim", "rabbitmq", "postgres"},
            "services are pgw-relay, pgw-sim, rabbitmq, postgres", sorted(s))
    relay = s.get("pgw-relay") or {}
    env = relay.get("environment") or {}
    c.check(get(relay, "healthcheck", "test") == ["CMD", "/usr/local/bin/pgw-relay", "healthcheck"],
            "pgw-relay health check is `pgw-relay healthcheck`")
    profile = env.get("PGW_RELAY_ENV")
    c.check(profile and os.path.exists(f"config/{profile}.toml"), "pgw-relay's PGW_RELAY_ENV profile exists", profile)
    db, amqp = env.get("PGW_RELAY__DATABASE__URL", ""), env.get("PGW_RELAY__BROKER__URL", "")
    c.check(db.startswith("postgres://") and "@postgres:" in db, "pgw-relay stores in the postgres service", db)
    c.check(amqp.startswith("amqp://") and "@rabbitmq:" in amqp, "pgw-relay publishes to the rabbitmq service", amqp)
    deps = relay.get("depends_on") or {}
    c.check(all(get(deps, d, "condition") == "service_healthy" for d in ("postgres", "rabbitmq")),
            "pgw-relay waits for healthy postgres and rabbitmq")
    c.check("management" in get(s, "rabbitmq", "image", default=""), "RabbitMQ image has the management UI")
    c.check((get(s, "pgw-sim", "entrypoint", default=[None]) or [None])[0] == "/usr/local/bin/pgw-sim",
            "pgw-sim runs from the pgw-relay image")
    print(f"  {c.passed} checks passed, {c.failed} failed")
    return 1 if c.failed else 0


def main():
    ap = argparse.ArgumentParser(description="pgw-relay manifest checks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("objects")
    o.add_argument("rendered")
    o.add_argument("--core-out", required=True)
    o.add_argument("--rules-out", required=True)
    o.add_argument("--overlay", action="store_true")
    o.add_argument("--label", default="")
    k = sub.add_parser("compose")
    k.add_argument("compose")
    d = sub.add_parser("dashboard")
    d.add_argument("dashboard")
    d.add_argument("--promql-out", required=True)
    args = ap.parse_args()
    return {"objects": cmd_objects, "compose": cmd_compose, "dashboard": cmd_dashboard}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
