"""Issue 27 point 4: the Grafana dashboard (deploy/grafana/lending-dashboard.json) has a `namespace`
variable, and every query reads the chosen namespace only: dev and prod are never summed together."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "lending-dashboard.json"
# A series of the service (or django-prometheus's), and the label matchers that follow it, if any.
SELECTOR = re.compile(r"\b((?:lending|django_http)_[a-z_]+)(\{[^}]*\})?")


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _targets(dashboard: dict) -> list[dict]:
    return [target for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_has_a_namespace_variable_from_the_services_own_series():
    variables = {variable["name"]: variable for variable in _dashboard()["templating"]["list"]}
    namespace = variables["namespace"]
    assert namespace["type"] == "query"
    assert namespace["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    query = namespace["query"]["query"] if isinstance(namespace["query"], dict) else namespace["query"]
    assert query.startswith("label_values(lending_build_info") and query.endswith(", namespace)")


def test_every_query_selects_the_chosen_namespace():
    unscoped = []
    for target in _targets(_dashboard()):
        for name, matchers in SELECTOR.findall(target["expr"]):
            if 'namespace="$namespace"' not in matchers:
                unscoped.append((name, target["expr"]))
    assert not unscoped, unscoped
    assert len(_targets(_dashboard())) >= 20
