#!/usr/bin/env bash
# Installs (once, pinned) the tools the test suite uses to check the published documents against
# the running service, and prints the directory they are in:
#   - schemathesis: drives the running service from docs/openapi.json (tests/api/documents.rs)
#   - jsonschema + PyYAML: validate docs/asyncapi.yaml (scripts/check-asyncapi.py)
#   - @asyncapi/specs (npm): the official AsyncAPI 3.0.0 JSON Schema
#
#   scripts/doc-tools.sh          # -> ~/.cache/pgw-relay/doc-tools
#
# Needs python3 (with venv) and npm; reaches PyPI and the npm registry only when something is
# missing or a pinned version changed. The tests find the tools through PGW_RELAY_DOC_TOOLS
# or this default directory.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
JSONSCHEMA_VERSION=4.26.0
PYYAML_VERSION=6.0.3
ASYNCAPI_SPECS_VERSION=6.11.1

DIR=${PGW_RELAY_DOC_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pgw-relay/doc-tools}
STAMP="schemathesis==$SCHEMATHESIS_VERSION jsonschema==$JSONSCHEMA_VERSION pyyaml==$PYYAML_VERSION @asyncapi/specs@$ASYNCAPI_SPECS_VERSION"

if [ -f "$DIR/.installed" ] && [ "$(cat "$DIR/.installed")" = "$STAMP" ] && [ -x "$DIR/bin/st" ]; then
    echo "$DIR"
    exit 0
fi

mkdir -p "$DIR"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
echo "installing $STAMP into $DIR" >&2
if ! { python3 -m venv "$DIR" || python3 -m venv --clear "$DIR"; } >"$LOG" 2>&1; then
    cat "$LOG" >&2; echo "cannot create a Python virtual environment in $DIR (python3-venv missing?)" >&2; exit 1
fi
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$DIR/bin/python" -m pip install -q \
        "schemathesis==$SCHEMATHESIS_VERSION" "jsonschema==$JSONSCHEMA_VERSION" "pyyaml==$PYYAML_VERSION" >"$LOG" 2>&1; then
    tail -20 "$LOG" >&2; echo "pip install failed" >&2; exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is required to fetch the AsyncAPI JSON Schema (@asyncapi/specs)" >&2; exit 1
fi
if ! npm install --prefix "$DIR" --no-audit --no-fund --silent "@asyncapi/specs@$ASYNCAPI_SPECS_VERSION" >"$LOG" 2>&1; then
    tail -20 "$LOG" >&2; echo "npm install @asyncapi/specs failed" >&2; exit 1
fi
echo "$STAMP" >"$DIR/.installed"
echo "$DIR"
