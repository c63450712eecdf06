#!/usr/bin/env python3
"""Checks docs/asyncapi.yaml: valid against the official AsyncAPI 3.0.0 JSON Schema (from the
@asyncapi/specs package), one channel and message per event type, and every payload reference
pointing at a schema file whose $id is the message's dataschema.

  check-asyncapi.py ASYNCAPI_3_0_0_SCHEMA.json [docs/asyncapi.yaml]
"""

import json
import os
import sys

import jsonschema
import yaml

TYPES = ["pending", "succeeded", "failed", "cancelled", "expired", "anomaly"]


def main():
    spec_schema = json.load(open(sys.argv[1], encoding="utf-8"))
    path = sys.argv[2] if len(sys.argv) > 2 else "docs/asyncapi.yaml"
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    problems = []
    validator = jsonschema.validators.validator_for(spec_schema)(spec_schema)
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
        problems.append(f"AsyncAPI 3.0.0 schema: {'/'.join(map(str, err.path))}: {err.message[:200]}")
    base = os.path.dirname(path)
    want = {f"payment.{t}" for t in TYPES}
    if set(doc.get("channels", {})) != want:
        problems.append(f"channels are not exactly the six event types: {sorted(doc.get('channels', {}))}")
    for name, msg in (doc.get("components", {}).get("messages") or {}).items():
        parts = msg["payload"]["schema"]["allOf"]
        envelope = os.path.join(base, parts[0]["$ref"])
        data_ref = os.path.join(base, parts[1]["properties"]["data"]["$ref"])
        dataschema = parts[1]["properties"]["dataschema"]["const"]
        for f in (envelope, data_ref):
            if not os.path.exists(f):
                problems.append(f"{name}: {f} does not exist")
        if os.path.exists(data_ref):
            schema_id = json.load(open(data_ref, encoding="utf-8")).get("$id")
            if schema_id != dataschema:
                problems.append(f"{name}: dataschema {dataschema} but {data_ref} has $id {schema_id}")
        if parts[1]["properties"]["type"]["const"] != name:
            problems.append(f"{name}: type const differs from the message name")
    for p in problems:
        print(f"  FAIL {p}")
    print(f"  {len(want)} event types, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
