"""Separate the custom resources from a rendered overlay and check them.

kubernetes-validate knows only the built-in kinds, so the custom resources (the Prometheus
Operator's, apiVersion monitoring.coreos.com/*, CloudNativePG's, postgresql.cnpg.io/*, and its
Barman Cloud plugin's, barmancloud.cnpg.io/*) are
validated here instead, against the strict schemas committed in
deploy/schemas/ (the fields this repository uses; an unknown field fails). The built-in kinds are
written to CORE_OUT for kubernetes-validate, and the rule groups of every PrometheusRule to
RULES_DIR/<overlay>/<name>.rules.yaml for `promtool check rules` and `promtool test rules`.

Usage: python tools/scripts/check_monitoring.py RENDERED.yaml CORE_OUT.yaml RULES_DIR
Exit status 1 when a custom resource is invalid or has no schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "deploy" / "schemas"
CUSTOM_GROUPS = ("monitoring.coreos.com/", "postgresql.cnpg.io/", "barmancloud.cnpg.io/")


def schema_for(doc: dict) -> dict | None:
    group, _, version = doc["apiVersion"].partition("/")
    path = SCHEMAS / f"{doc['kind'].lower()}-{group.split('.')[0]}-{version}.json"
    return json.loads(path.read_text()) if path.exists() else None


def check_custom(doc: dict) -> list[str]:
    where = f"{doc['kind']} {doc.get('metadata', {}).get('name')}"
    schema = schema_for(doc)
    if schema is None:
        return [f"{where}: no schema in {SCHEMAS.relative_to(ROOT)} for {doc['apiVersion']} {doc['kind']}"]
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{where}: {'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in validator.iter_errors(doc)]


def main(rendered: Path, core_out: Path, rules_dir: Path) -> int:
    docs = [doc for doc in yaml.safe_load_all(rendered.read_text()) if doc]
    custom = [doc for doc in docs if doc.get("apiVersion", "").startswith(CUSTOM_GROUPS)]
    core = [doc for doc in docs if doc not in custom]
    core_out.write_text(yaml.safe_dump_all(core, sort_keys=False))
    errors = [error for doc in custom for error in check_custom(doc)]
    rules_dir.mkdir(parents=True, exist_ok=True)
    for doc in custom:
        if doc["kind"] == "PrometheusRule" and not errors:
            target = rules_dir / rendered.stem / f"{doc['metadata']['name']}.rules.yaml"
            target.parent.mkdir(exist_ok=True)
            target.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}, sort_keys=False))
    for error in errors:
        print(f"monitoring: {rendered.name}: {error}", file=sys.stderr)
    kinds = sorted({doc["kind"] for doc in custom})
    print(f"monitoring: {rendered.name}: {len(custom)} custom resource(s) {kinds}, {len(core)} built-in")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
