"""Issue 24 point 1: the SIP2 gateway deployed like the service's other processes, and named the same
way everywhere: the image's `sip` role, the Compose service `sip`, the Kubernetes Deployment, Service,
PodDisruptionBudget, NetworkPolicy and PodMonitor `lending-sip`, the ports SIP_PORT (6001, named `sip`)
and SIP_METRICS_PORT (9106, named `metrics`), and LENDING_API_URL naming the web's own address. And
the role itself, started locally as the image starts it, listening where those files say.

The rendered overlays need kubectl: without it those tests skip with the reason, except under
CI=true, where they fail."""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.roles import start_role, stop_role, wait_for_port
from tools.harness.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
SIP_PORT, METRICS_PORT = 6001, 9106
SIP_POD = {"app.kubernetes.io/name": "lending-service", "app.kubernetes.io/component": "sip"}


# --- the image and Compose -------------------------------------------------------------------------


def test_the_image_carries_the_gateway_and_its_role_starts_it():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY sip_gateway/ ./sip_gateway/" in dockerfile
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    role = re.search(r"^    sip\)\n(.*?)\n        ;;", entrypoint, re.MULTILINE | re.DOTALL)
    assert role, "docker/entrypoint.sh has no `sip` role"
    assert role.group(1).strip() == 'exec "$PYTHON" -m sip_gateway "$@"'


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_runs_the_gateway_on_its_ports_after_the_migration():
    services = _compose()
    sip = services["sip"]
    assert sip["command"] == ["sip"]
    assert sip["image"] == services["web"]["image"], "one image, several roles"
    env = sip["environment"]
    assert (int(env["SIP_PORT"]), int(env["SIP_METRICS_PORT"])) == (SIP_PORT, METRICS_PORT)
    assert env["SIP_HOST"] == "0.0.0.0", "kiosks reach it through the published port"
    assert sip["ports"] == [f"127.0.0.1:{SIP_PORT}:{SIP_PORT}", f"127.0.0.1:{METRICS_PORT}:{METRICS_PORT}"]
    # The health check opens the kiosks' port and asks the metrics port, not the image's web check.
    check = sip["healthcheck"]["test"][-1]
    assert f"('127.0.0.1', {SIP_PORT})" in check
    assert f"http://127.0.0.1:{METRICS_PORT}/health/live" in check
    assert sip["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert "web" in sip["depends_on"]


def test_compose_points_the_gateway_at_the_web_service():
    services = _compose()
    api = urlsplit(services["sip"]["environment"]["LENDING_API_URL"])
    assert api.hostname == "web"
    published = {int(port.rsplit(":", 1)[-1]) for port in services["web"]["ports"]}
    assert api.port in published
    assert "web" in services["web"]["environment"]["DJANGO_ALLOWED_HOSTS"].split(",")


# --- Kubernetes ------------------------------------------------------------------------------------


def _one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def _config(docs: list[dict]) -> dict[str, str]:
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("lending-config")]
    return config["data"]


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a pod's labels, as Kubernetes reads it."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        matched = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


def _sip_pod(docs: list[dict]) -> dict:
    return _one(docs, "Deployment", "lending-sip")["spec"]["template"]


def _ports(container: dict) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container["ports"]}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_deployment_runs_the_sip_role_on_the_configured_ports(rendered, overlay):
    docs = rendered[overlay]
    deployment = _one(docs, "Deployment", "lending-sip")
    pod = deployment["spec"]["template"]
    assert SIP_POD.items() <= pod["metadata"]["labels"].items()
    assert _selects(deployment["spec"]["selector"], pod["metadata"]["labels"])
    (container,) = pod["spec"]["containers"]
    web = _one(docs, "Deployment", "lending-web")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == web["image"]
    assert container["args"] == ["sip"]
    config = _config(docs)
    assert _ports(container) == {"sip": int(config["SIP_PORT"]), "metrics": int(config["SIP_METRICS_PORT"])}
    assert (int(config["SIP_PORT"]), int(config["SIP_METRICS_PORT"])) == (SIP_PORT, METRICS_PORT)
    assert config["SIP_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["tcpSocket"] == {"port": "sip"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "metrics"}
    # The others' hardening.
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["topologySpreadConstraints"]
    assert all(_selects(c["labelSelector"], pod["metadata"]["labels"]) for c in spec["topologySpreadConstraints"])
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    # It reads the SIP accounts from the database: it starts on its schema, like the relay.
    (gate,) = spec["initContainers"]
    assert gate["args"][:2] == ["manage", "wait_for_migrations"]
    assert gate["imagePullPolicy"] == container["imagePullPolicy"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_gateway_calls_the_web_service(rendered, overlay):
    docs = rendered[overlay]
    api = urlsplit(_config(docs)["LENDING_API_URL"])
    service = _one(docs, "Service", api.hostname)
    assert (api.port or 80) in {port["port"] for port in service["spec"]["ports"]}
    web_pod = _one(docs, "Deployment", "lending-web")["spec"]["template"]["metadata"]["labels"]
    assert _selects({"matchLabels": service["spec"]["selector"]}, web_pod)
    assert api.hostname in _config(docs)["DJANGO_ALLOWED_HOSTS"].split(",")
    # And the web pods accept it.
    sip_labels = _sip_pod(docs)["metadata"]["labels"]
    web_ingress = _one(docs, "NetworkPolicy", "lending-web-ingress")["spec"]["ingress"][0]["from"]
    assert any("podSelector" in source and _selects(source["podSelector"], sip_labels) for source in web_ingress)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_service_pdb_and_pod_monitor_select_the_gateway(rendered, overlay):
    docs = rendered[overlay]
    labels = _sip_pod(docs)["metadata"]["labels"]
    service = _one(docs, "Service", "lending-sip")
    assert _selects({"matchLabels": service["spec"]["selector"]}, labels)
    assert service["spec"]["ports"] == [{"name": "sip", "port": SIP_PORT, "targetPort": "sip", "protocol": "TCP"}]
    budget = _one(docs, "PodDisruptionBudget", "lending-sip")["spec"]
    assert _selects(budget["selector"], labels) and budget["maxUnavailable"] == 1
    if overlay == "prod":
        monitor = _one(docs, "PodMonitor", "lending-sip")["spec"]
        assert _selects(monitor["selector"], labels)
        (endpoint,) = monitor["podMetricsEndpoints"]
        assert endpoint["port"] == "metrics"
        assert {"targetLabel": "job", "replacement": "lending-sip"} in endpoint["relabelings"]


def _policies_of(docs: list[dict], labels: dict[str, str]) -> dict[str, dict]:
    return {
        d["metadata"]["name"]: d["spec"]
        for d in docs
        if d["kind"] == "NetworkPolicy" and _selects(d["spec"]["podSelector"], labels)
    }


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_network_policies_let_kiosks_in_and_the_gateway_out_to_dns_the_database_and_the_api(rendered, overlay):
    docs = rendered[overlay]
    labels = _sip_pod(docs)["metadata"]["labels"]
    policies = _policies_of(docs, labels)
    # Its own policy, not the default one (which opens Redis and the peers).
    assert "lending-service" not in policies
    assert set(policies) == {"lending-sip", "lending-metrics-ingress", "lending-otlp-egress"}
    # Every other process of the service still has the default policy.
    for name, pod in (("lending-web", "Deployment"), ("lending-relay", "Deployment")):
        other = _one(docs, pod, name)["spec"]["template"]["metadata"]["labels"]
        assert "lending-service" in _policies_of(docs, other), name

    own = policies["lending-sip"]
    assert set(own["policyTypes"]) == {"Ingress", "Egress"}
    (kiosks,) = own["ingress"]
    assert kiosks["ports"] == [{"protocol": "TCP", "port": SIP_PORT}]
    assert {"namespaceSelector": {}, "podSelector": {"matchLabels": {"lending.library/sip-client": "true"}}} in (
        kiosks["from"]
    )
    egress = {(p["protocol"], p["port"]) for rule in own["egress"] for p in rule["ports"]}
    assert egress == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 8000)}
    (to_api,) = [rule for rule in own["egress"] if {"protocol": "TCP", "port": 8000} in rule["ports"]]
    web_pod = _one(docs, "Deployment", "lending-web")["spec"]["template"]["metadata"]["labels"]
    assert [_selects(peer["podSelector"], web_pod) for peer in to_api["to"]] == [True]
    # Prometheus (the monitoring namespace) reaches the metrics port.
    metrics = policies["lending-metrics-ingress"]["ingress"][0]
    assert {"protocol": "TCP", "port": METRICS_PORT} in metrics["ports"]


def test_prod_opens_the_sip_port_to_the_kiosks_networks_only(rendered):
    docs = rendered["prod"]
    service = _one(docs, "Service", "lending-sip")["spec"]
    assert service["type"] == "LoadBalancer"
    # The kiosks' own addresses reach the pods, so the NetworkPolicy's ipBlock can match them.
    assert service["externalTrafficPolicy"] == "Local"
    ranges = service["loadBalancerSourceRanges"]
    kiosks = _one(docs, "NetworkPolicy", "lending-sip")["spec"]["ingress"][0]["from"]
    assert sorted(source["ipBlock"]["cidr"] for source in kiosks if "ipBlock" in source) == sorted(ranges)
    assert _one(rendered["dev"], "Service", "lending-sip")["spec"]["type"] == "ClusterIP"


def test_deploy_sh_starts_the_gateway_after_the_migration():
    script = (ROOT / "k8s" / "deploy.sh").read_text()
    (selector,) = re.findall(r'before_migration_selector="app\.kubernetes\.io/component notin \(([^)]*)\)"', script)
    assert "sip" in selector.split(",")


# --- the image's `sip` role, started locally ---------------------------------------------------------


def test_the_sip_role_serves_kiosks_and_its_probes_on_the_configured_ports(role_env):
    sip_port, metrics_port = free_port(), free_port()
    proc = start_role(role_env, "sip", SIP_HOST="127.0.0.1", SIP_PORT=str(sip_port), SIP_METRICS_PORT=str(metrics_port))
    try:
        deadline = time.monotonic() + 60
        wait_for_port(sip_port, proc, deadline)
        wait_for_port(metrics_port, proc, deadline)
        # What the probes and Compose's health check ask: the SIP port answers SIP, the metrics port its paths.
        with socket.create_connection(("127.0.0.1", sip_port), timeout=5) as kiosk:
            kiosk.sendall(b"9900302.00\r")
            answer = b""
            while not answer.endswith(b"\r"):
                chunk = kiosk.recv(4096)
                assert chunk, "the gateway closed the connection instead of answering 99"
                answer += chunk
        assert answer.startswith(b"98")
        for path in ("/health/live", "/metrics"):
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}{path}", timeout=5) as response:  # noqa: S310
                assert response.status == 200, path
    finally:
        output = stop_role(proc)
    assert proc.returncode in (0, -signal.SIGTERM), f"the sip role did not stop cleanly on SIGTERM:\n{output}"
