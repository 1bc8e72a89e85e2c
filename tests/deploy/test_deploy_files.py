"""The deployment files: offline checks, the rendered Kubernetes manifests, and
every entrypoint role started locally (outside Docker).

The offline checks need the lint virtualenv (.venv-lint, `make lint-deploy`
creates it) and kubectl or kustomize: without them these tests skip with the
reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import renderer, unavailable
from tests.deploy.roles import ENTRYPOINT, start_role, stop_role, wait_for_port
from tools.harness.processes import free_port as _free_port

ROOT = Path(__file__).resolve().parents[2]
LINT_VENV = Path(os.environ.get("LINT_VENV", ROOT / ".venv-lint"))


# --- offline checks ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lint_run(tmp_path_factory):
    if not (LINT_VENV / "bin" / "checkov").exists():
        unavailable(f"{LINT_VENV} is missing: run `make lint-deploy` to create it")
    if renderer() is None:
        unavailable("neither kustomize nor kubectl is installed: the overlays cannot be rendered")
    out = tmp_path_factory.mktemp("lint-deploy")
    env = {**os.environ, "LINT_OUT": str(out), "LINT_VENV": str(LINT_VENV), "APP_PYTHON": sys.executable}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        ["bash", str(ROOT / "tools" / "scripts" / "lint_deploy.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, out / "rendered"


def test_offline_deployment_checks_pass(lint_run):
    proc, _ = lint_run
    assert proc.returncode == 0, f"tools/scripts/lint_deploy.sh failed:\n{proc.stdout}\n{proc.stderr}"
    assert "lint-deploy: all checks passed" in proc.stdout


def _get(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert found, f"no {kind} {name}"
    return found[0]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_has_every_resource_and_no_secret(rendered, overlay):
    kinds = {d["kind"] for d in rendered[overlay]}
    assert {
        "Namespace",
        "ConfigMap",
        "ServiceAccount",
        "Deployment",
        "Job",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds
    assert "Secret" not in kinds, "secrets are created out of band (k8s/secret.template.yaml)"
    # The Prometheus Operator's kinds only where the cluster runs it (the prod overlay).
    assert ({"PodMonitor", "PrometheusRule"} <= kinds) == (overlay == "prod")
    namespaces = {d["metadata"].get("namespace") for d in rendered[overlay] if d["kind"] != "Namespace"}
    assert namespaces == {f"lending-{overlay}"}


def test_prod_web_deployment(rendered):
    docs = rendered["prod"]
    web = _get(docs, "Deployment", "lending-web")
    spec = web["spec"]
    assert "replicas" not in spec, "the HPA owns the count (tests/deploy/test_rollout.py)"
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["topologySpreadConstraints"]
    (container,) = pod["containers"]
    assert container["args"] == ["web"]
    assert container["image"].startswith("registry.example.com/library/lending-service:")
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live/"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live/"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready/"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()

    hpa = _get(docs, "HorizontalPodAutoscaler", "lending-web")
    assert hpa["spec"]["minReplicas"] >= 3
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu"}
    sa = _get(docs, "ServiceAccount", "lending-service")
    assert sa["automountServiceAccountToken"] is False
    roles = {
        d["spec"]["template"]["spec"]["containers"][0]["args"][0]
        for d in docs
        if d["kind"] in ("Deployment", "Job") and d["spec"]["template"]["metadata"]["labels"].get(NAME) == SERVICE
    }
    assert {"web", "relay", "migrate", "notices"} <= roles


NAME, SERVICE = "app.kubernetes.io/name", "lending-service"


@pytest.mark.parametrize(
    ("name", "port", "args"), [("lending-relay", 9101, ["relay"]), ("lending-scheduler", 9102, ["notices", "--loop"])]
)
def test_relay_and_scheduler_serve_metrics_and_a_liveness_probe(rendered, name, port, args):
    docs = rendered["prod"]
    deployment = _get(docs, "Deployment", name)
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == args
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "metrics"}
    config = _get(docs, "ConfigMap", "lending-config")["data"]
    assert config["METRICS_ADDRESS"] == "0.0.0.0"
    assert int(config["RELAY_METRICS_PORT" if port == 9101 else "SCHEDULER_METRICS_PORT"]) == port
    # A PodMonitor scrapes it, with the job label the alerts use.
    monitor = _get(docs, "PodMonitor", name)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert {"targetLabel": "job", "replacement": name} in endpoint["relabelings"]
    # The monitoring namespace may reach the port.
    metrics_ingress = _get(docs, "NetworkPolicy", "lending-metrics-ingress")["spec"]
    assert metrics_ingress["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert port in {p["port"] for p in metrics_ingress["ingress"][0]["ports"]}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_redis_is_the_shared_cache_and_reachable(rendered, overlay):
    docs = rendered[overlay]
    config = _get(docs, "ConfigMap", "lending-config")["data"]
    # CACHE_URL carries Redis's password: it is in the Secret (k8s/secret.template.yaml), not here.
    assert "CACHE_URL" not in config
    service = _get(docs, "Service", "lending-redis")
    redis = _get(docs, "Deployment", "lending-redis")["spec"]["template"]
    assert service["spec"]["selector"].items() <= redis["metadata"]["labels"].items()
    assert redis["metadata"]["labels"]["lending.library/cache"] == "true"
    egress = _get(docs, "NetworkPolicy", "lending-service")["spec"]["egress"]
    to_cache = [rule for rule in egress if {"protocol": "TCP", "port": 6379} in rule.get("ports", [])]
    assert to_cache, "the service's pods may not reach Redis"
    assert to_cache[0]["to"][0]["podSelector"]["matchLabels"] == {"lending.library/cache": "true"}
    redis_ingress = _get(docs, "NetworkPolicy", "lending-redis")["spec"]
    assert redis_ingress["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {NAME: SERVICE}}}]


def test_network_policy_limits_ingress_and_egress(rendered):
    policies = {d["metadata"]["name"]: d["spec"] for d in rendered["prod"] if d["kind"] == "NetworkPolicy"}
    default = policies["lending-service"]
    assert set(default["policyTypes"]) == {"Ingress", "Egress"}
    assert not default.get("ingress"), "no ingress except through lending-web-ingress"
    egress_ports = {p["port"] for rule in default["egress"] for p in rule.get("ports", [])}
    assert {53, 5432, 6379} <= egress_ports
    web = policies["lending-web-ingress"]
    sources = web["ingress"][0]["from"]
    assert any(s.get("podSelector", {}).get("matchLabels") == {"lending.library/client": "true"} for s in sources)
    assert any(
        s.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"}
        for s in sources
    )


# --- entrypoint roles, started locally -----------------------------------------------------------


def _get_status(url: str) -> int:
    request = urllib.request.Request(url, headers={"Host": "localhost"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_role_migrate_is_idempotent(role_env):
    again = subprocess.run([str(ENTRYPOINT), "migrate"], env=role_env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply" in again.stdout


def test_role_web_serves_probes_and_metrics(role_env):
    port = _free_port()
    proc = start_role(role_env, "web", GUNICORN_BIND=f"127.0.0.1:{port}")
    try:
        wait_for_port(port, proc, time.monotonic() + 60)
        base = f"http://127.0.0.1:{port}"
        assert _get_status(f"{base}/health/live/") == 200
        assert _get_status(f"{base}/health/ready/") == 200
        assert _get_status(f"{base}/metrics") == 200
        # Multi-process mode: the worker writes its samples under PROMETHEUS_MULTIPROC_DIR.
        assert list(Path(role_env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"))
    finally:
        output = stop_role(proc)
    assert proc.returncode == 0, f"gunicorn did not stop cleanly on SIGTERM:\n{output}"


@pytest.mark.parametrize(
    ("role", "port_variable"), [(["relay"], "RELAY_METRICS_PORT"), (["notices", "--loop"], "SCHEDULER_METRICS_PORT")]
)
def test_role_relay_and_scheduler_keep_running_and_serve_metrics(role_env, role, port_variable):
    port = _free_port()
    proc = start_role(role_env, *role, **{port_variable: str(port), "METRICS_ADDRESS": "127.0.0.1"})
    try:
        wait_for_port(port, proc, time.monotonic() + 60)
        assert _get_status(f"http://127.0.0.1:{port}/metrics") == 200
        if role == ["relay"]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
                exposition = response.read().decode()
            assert 'lending_peer_circuit_breaker_state{peer="notification"} 0.0' in exposition
            assert "lending_outbox_pending_messages" in exposition
        assert _get_status(f"http://127.0.0.1:{port}/health/live") == 200
        time.sleep(2)
        assert proc.poll() is None, f"{role} exited with {proc.returncode}:\n{stop_role(proc)}"
    finally:
        output = stop_role(proc)
    assert proc.returncode in (0, -signal.SIGTERM), output


def test_role_notices_runs_once_and_exits(role_env):
    proc = subprocess.run([str(ENTRYPOINT), "notices"], env=role_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"


def test_role_peers_listen_on_the_given_ports(role_env):
    ports = [_free_port() for _ in range(4)]
    proc = start_role(
        role_env,
        "peers",
        "--book-port",
        str(ports[0]),
        "--user-port",
        str(ports[1]),
        "--notification-port",
        str(ports[2]),
        "--fees-port",
        str(ports[3]),
        PEERS_HOST="127.0.0.1",
    )
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            wait_for_port(port, proc, deadline)
    finally:
        stop_role(proc)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_redis_is_a_fixed_release_requiring_the_secret_s_password(rendered, overlay):
    """Issue 27: Redis 7.4.6 or later (the fixes of CVE-2025-21605 and CVE-2025-49844) by digest, with
    requirepass from the Secret's REDIS_PASSWORD, which the template's CACHE_URL carries."""
    container = _get(rendered[overlay], "Deployment", "lending-redis")["spec"]["template"]["spec"]["containers"][0]
    match = re.fullmatch(r"redis:(\d+)\.(\d+)\.(\d+)-alpine@sha256:[0-9a-f]{64}", container["image"])
    assert match, container["image"]
    assert tuple(int(part) for part in match.groups()) >= (7, 4, 6)
    env = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in container["env"]}
    from_secret = {"name": "lending-secrets", "key": "REDIS_PASSWORD"}
    assert env["REDIS_PASSWORD"] == from_secret and env["REDISCLI_AUTH"] == from_secret
    args = container["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert "--protected-mode" not in args
    template = yaml.safe_load((ROOT / "k8s" / "secret.template.yaml").read_text())["stringData"]
    assert "REDIS_PASSWORD" in template
    assert template["CACHE_URL"].startswith("redis://:") and template["CACHE_URL"].endswith("@lending-redis:6379/0")
