"""Issue 27 point 2: a rollout in order, safe under GitOps, and a CloudNativePG database to adopt.

The rendered overlays (and k8s/examples/cloudnative-pg) are read as Kubernetes would; k8s/deploy.sh
runs against a stand-in kubectl that renders for real and records every other call, so the order
of its steps and its waits are checked without a cluster."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import render

ROOT = Path(__file__).resolve().parents[2]
SERVICE = {"app.kubernetes.io/name": "lending-service"}
CNPG_APP_SECRET = {"name": "lending-db-app", "key": "password"}


@pytest.fixture(scope="module")
def example() -> list[dict]:
    return render(ROOT / "k8s" / "examples" / "cloudnative-pg")


def _one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"{len(found)} {kind} named {name}*"
    return found[0]


def _config(docs: list[dict], name: str = "lending-config") -> dict[str, str]:
    return _one(docs, "ConfigMap", name)["data"]


def _pod_specs(docs: list[dict]) -> dict[str, dict]:
    """Every pod template of the service, by workload name."""
    pods = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            pods[doc["metadata"]["name"]] = doc["spec"]["template"]
        elif doc["kind"] == "CronJob":
            pods[doc["metadata"]["name"]] = doc["spec"]["jobTemplate"]["spec"]["template"]
    return {name: pod for name, pod in pods.items() if SERVICE.items() <= pod["metadata"]["labels"].items()}


def _containers(pod: dict) -> list[dict]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def _env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


# --- scaling: the HPA owns the web replicas, on CPU; the relay has a disruption budget ---------------


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_hpa_alone_sets_the_web_replicas_and_scales_on_cpu_only(rendered, overlay):
    web = _one(rendered[overlay], "Deployment", "lending-web")
    assert "replicas" not in web["spec"], "every apply would reset the HPA's count"
    hpa = _one(rendered[overlay], "HorizontalPodAutoscaler", "lending-web")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"], "Python workers never give memory back"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_a_node_drain_never_takes_every_relay_at_once(rendered, overlay):
    relay = _one(rendered[overlay], "Deployment", "lending-relay")["spec"]["template"]["metadata"]["labels"]
    budgets = [
        d
        for d in rendered[overlay]
        if d["kind"] == "PodDisruptionBudget" and d["spec"]["selector"]["matchLabels"].items() <= relay.items()
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"] == {**budgets[0]["spec"], "maxUnavailable": 1}, "one relay at a time, never blocked"


# --- order: the schema before the relay and the scheduler; the Job as a GitOps hook ---------------------


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("workload", ["lending-relay", "lending-scheduler", "lending-sip"])
def test_the_relay_and_the_scheduler_wait_for_the_schema(rendered, overlay, workload):
    docs = rendered[overlay]
    pod = _one(docs, "Deployment", workload)["spec"]["template"]
    (gate,) = pod["spec"]["initContainers"]
    main = pod["spec"]["containers"][0]
    assert gate["args"][:2] == ["manage", "wait_for_migrations"]
    timeout = int(gate["args"][gate["args"].index("--timeout") + 1])
    assert timeout >= _one(docs, "Job", "lending-migrate")["spec"]["activeDeadlineSeconds"]
    for same in ("image", "imagePullPolicy", "envFrom", "securityContext", "volumeMounts"):
        assert gate[same] == main[same], same
    assert _env(gate).get("DATABASE_PASSWORD") == _env(main).get("DATABASE_PASSWORD")
    assert {"cpu", "memory"} <= gate["resources"]["limits"].keys()


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_migration_job_is_a_presync_hook_recreated_each_release(rendered, overlay):
    docs = rendered[overlay]
    job = _one(docs, "Job", "lending-migrate")
    notes = job["metadata"]["annotations"]
    assert notes["argocd.argoproj.io/hook"] == "PreSync"
    assert notes["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert set(notes["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert notes["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert notes["kustomize.toolkit.fluxcd.io/force"] == "enabled"
    # A PreSync hook runs before the sync creates anything else: what it reads must be a hook too,
    # created before it, under a name that does not change (no hash suffix).
    pod = job["spec"]["template"]["spec"]
    config_names = {
        source["configMapRef"]["name"]
        for container in _containers(job["spec"]["template"])
        for source in container["envFrom"]
        if "configMapRef" in source
    }
    assert config_names == {"lending-migrate-config"}
    hook_config = _one(docs, "ConfigMap", "lending-migrate-config")
    assert hook_config["metadata"]["name"] == "lending-migrate-config"
    config_notes = hook_config["metadata"]["annotations"]
    assert config_notes["argocd.argoproj.io/hook"] == "PreSync"
    assert int(config_notes["argocd.argoproj.io/sync-wave"]) < int(notes.get("argocd.argoproj.io/sync-wave", "0"))
    assert int(config_notes["helm.sh/hook-weight"]) < int(notes.get("helm.sh/hook-weight", "0"))
    # The role's limits are set before migrating, with the service's own values.
    (role_limits,) = pod["initContainers"]
    assert role_limits["args"] == ["manage", "apply_role_timeouts"]
    app, hook = _config(docs), hook_config["data"]
    for key in ("DATABASE_ENGINE", "DATABASE_NAME", "DATABASE_USER", "DATABASE_PORT"):
        assert hook[key] == app[key], key
    for key in ("DATABASE_STATEMENT_TIMEOUT_MS", "DATABASE_LOCK_TIMEOUT_MS"):
        assert hook.get(key) == app.get(key), f"{key}: the role gets what the service expects"


def test_migrations_run_on_the_primary_not_through_the_pooler(rendered):
    docs = rendered["prod"]
    assert _config(docs)["DATABASE_HOST"] == "lending-db-pooler-rw"
    assert _config(docs, "lending-migrate-config")["DATABASE_HOST"] == "lending-db-rw"


def _deadline(job: dict) -> int:
    return int(job["spec"]["activeDeadlineSeconds"])


def test_wait_for_migrations_holds_until_the_schema_is_there(tmp_path):
    """The relay's and scheduler's gate: unapplied migrations fail it at its deadline; once migrated it
    passes at once."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gate.sqlite3'}",
    }

    def manage(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "manage.py", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)

    waiting = manage("wait_for_migrations", "--timeout", "0")
    assert waiting.returncode == 1
    assert "unapplied migration(s)" in waiting.stderr
    assert manage("migrate", "--noinput").returncode == 0
    ready = manage("wait_for_migrations", "--timeout", "0")
    assert ready.returncode == 0, ready.stderr
    assert "schema is up to date" in ready.stdout + ready.stderr


# --- k8s/deploy.sh, against a stand-in kubectl ----------------------------------------------------------

FAKE_KUBECTL = r'''#!/usr/bin/env python3
"""Renders with the real kubectl; records every other call (and what an apply would apply)."""
import json, os, subprocess, sys
args = sys.argv[1:]
log = os.environ["FAKE_KUBECTL_LOG"]
if args and args[0] == "kustomize":
    sys.exit(subprocess.run([os.environ["REAL_KUBECTL"], *args]).returncode)
record = {"args": args}
if "apply" in args and "-f" in args:
    source = args[args.index("-f") + 1]
    record["manifests"] = sys.stdin.read() if source == "-" else open(source).read()
with open(log, "a") as out:
    out.write(json.dumps(record) + "\n")
if args[:2] == ["create", "namespace"]:
    print("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + args[2])
elif "get" in args and "deployments" in args and "-o" in args:
    print("deployment.apps/lending-web\ndeployment.apps/lending-relay\ndeployment.apps/lending-scheduler")
'''


def _selected(docs: list[dict], selector: str | None) -> list[dict]:
    """The documents `kubectl apply -l SELECTOR` applies (the two forms deploy.sh uses)."""
    if selector is None:
        return docs
    key, _, values = selector.partition(" notin ")
    if values:
        excluded = {v.strip() for v in values.strip("()").split(",")}
        return [d for d in docs if d["metadata"].get("labels", {}).get(key.strip()) not in excluded]
    key, _, value = selector.partition("=")
    return [d for d in docs if d["metadata"].get("labels", {}).get(key) == value]


def _run_deploy(overlay: str, tmp: Path) -> list[dict]:
    """k8s/deploy.sh OVERLAY against the stand-in kubectl; its calls, in order."""
    fake = tmp / "kubectl"
    fake.write_text(FAKE_KUBECTL.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    fake.chmod(0o755)
    log = tmp / "calls.jsonl"
    env = {
        **os.environ,
        "KUBECTL": str(fake),
        "REAL_KUBECTL": shutil.which("kubectl") or "kubectl",
        "FAKE_KUBECTL_LOG": str(log),
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "k8s" / "deploy.sh"), overlay], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def deploy_calls(tmp_path_factory, rendered) -> list[dict]:
    return _run_deploy("prod", tmp_path_factory.mktemp("deploy-prod"))


def _step(call: dict) -> str:
    args = call["args"]
    if "wait" in args:
        return "wait " + next(a for a in args[args.index("wait") + 1 :] if not a.startswith("--"))
    if "rollout" in args:
        return "rollout " + args[args.index("status") + 1]
    if "apply" in args:
        return "apply"
    return " ".join(args[:3])


def test_deploy_sh_migrates_before_the_relay_and_scheduler_exist(deploy_calls, rendered):
    docs = rendered["prod"]
    applied_before_migration: set[tuple[str, str]] = set()
    migrated = False
    for call in deploy_calls:
        step = _step(call)
        if step == "wait job/lending-migrate":
            migrated = True
        if step == "apply" and "manifests" in call and not migrated:
            args = call["args"]
            selector = args[args.index("-l") + 1] if "-l" in args else None
            names = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(call["manifests"]) if d}
            applied_before_migration |= {
                (d["kind"], d["metadata"]["name"])
                for d in _selected(docs, selector)
                if (d["kind"], d["metadata"]["name"]) in names
            }
    assert migrated
    assert ("Job", "lending-migrate") in applied_before_migration
    workloads = {(kind, name) for kind, name in applied_before_migration if kind in ("Deployment", "CronJob")}
    assert not workloads & {
        ("Deployment", "lending-web"),
        ("Deployment", "lending-relay"),
        ("Deployment", "lending-scheduler"),
        ("Deployment", "lending-sip"),
        ("CronJob", "lending-privacy"),
    }, "a process of the new release ran before its schema"
    steps = [_step(call) for call in deploy_calls]
    assert steps.index("wait job/lending-migrate") < max(i for i, s in enumerate(steps) if s == "apply")


def test_deploy_sh_waits_as_long_as_the_migration_may_run(deploy_calls, rendered):
    (wait,) = [call["args"] for call in deploy_calls if _step(call) == "wait job/lending-migrate"]
    timeout = next(a for a in wait if a.startswith("--timeout="))
    seconds = int(re.fullmatch(r"--timeout=(\d+)s", timeout).group(1))  # type: ignore[union-attr]
    deadline = _deadline(_one(rendered["prod"], "Job", "lending-migrate"))
    assert deadline <= seconds <= deadline + 120, "the Job's activeDeadlineSeconds decides, not a fixed 300 s"


def test_deploy_sh_on_dev_starts_with_the_database_and_waits_until_it_is_ready(tmp_path, rendered):
    calls = _run_deploy("dev", tmp_path)
    steps = [_step(call) for call in calls]
    database = "app.kubernetes.io/component=database"
    (database_apply,) = [i for i, call in enumerate(calls) if steps[i] == "apply" and database in call["args"]]
    ready = steps.index("wait clusters.postgresql.cnpg.io")
    assert "--for=condition=Ready" in calls[ready]["args"]
    assert database_apply < ready < steps.index("wait job/lending-migrate")
    assert calls[ready + 1]["args"] == ["-n", "lending-dev", "get", "secret", "lending-db-app"]
    selected = _selected(rendered["dev"], database)
    assert [(d["kind"], d["metadata"]["name"]) for d in selected] == [("Cluster", "lending-db")]


# --- k8s/examples/cloudnative-pg ---------------------------------------------------------------------


def test_the_cloudnative_pg_cluster_is_reachable_and_sets_the_role_limits(example, rendered):
    cluster = _one(example, "Cluster", "lending-db")
    app = _config(rendered["prod"])
    # The service's NetworkPolicy lets its pods reach database pods by label: the instances carry it.
    egress = _one(rendered["prod"], "NetworkPolicy", "lending-service")["spec"]["egress"]
    (to_database,) = [rule for rule in egress if {"protocol": "TCP", "port": 5432} in rule.get("ports", [])]
    database_labels = to_database["to"][0]["podSelector"]["matchLabels"]
    assert database_labels.items() <= cluster["spec"]["inheritedMetadata"]["labels"].items()
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == (app["DATABASE_NAME"], app["DATABASE_USER"])
    sql = " ".join(initdb["postInitApplicationSQL"])
    for name, variable, default in (
        ("statement_timeout", "DATABASE_STATEMENT_TIMEOUT_MS", 15000),
        ("lock_timeout", "DATABASE_LOCK_TIMEOUT_MS", 5000),
    ):
        ms = int(app.get(variable, default))
        assert f"ALTER ROLE {app['DATABASE_USER']} SET {name} = '{ms}ms'" in sql


def test_the_pooler_is_the_service_host_and_its_pods_are_reachable(example, rendered):
    pooler = _one(example, "Pooler", "lending-db-pooler-rw")
    assert pooler["metadata"]["name"] == _config(rendered["prod"])["DATABASE_HOST"]
    assert pooler["spec"]["cluster"]["name"] == "lending-db"
    assert pooler["spec"]["type"] == "rw"
    ignored = pooler["spec"]["pgbouncer"]["parameters"]["ignore_startup_parameters"].split(",")
    assert {"extra_float_digits", "options"} <= set(ignored)
    assert pooler["spec"]["template"]["metadata"]["labels"]["lending.library/database"] == "true"


def test_the_cluster_is_backed_up_on_a_schedule(example):
    backup = _one(example, "ScheduledBackup", "lending-db")
    assert backup["spec"]["cluster"]["name"] == "lending-db"
    assert backup["spec"]["schedule"].count(" ") == 5, "CloudNativePG schedules have a seconds field"
    # Through the Barman Cloud plugin (the in-tree barmanObjectStore is gone from CloudNativePG 1.32).
    plugin = "barman-cloud.cloudnative-pg.io"
    assert (backup["spec"]["method"], backup["spec"]["pluginConfiguration"]["name"]) == ("plugin", plugin)
    (archiver,) = _one(example, "Cluster", "lending-db")["spec"]["plugins"]
    assert (archiver["name"], archiver["isWALArchiver"]) == (plugin, True)
    store = _one(example, "ObjectStore", archiver["parameters"]["barmanObjectName"])
    assert store["spec"]["retentionPolicy"]
    assert store["spec"]["configuration"]["destinationPath"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_service_container_reads_the_password_from_the_cloudnative_pg_app_secret(rendered, overlay):
    for workload, pod in _pod_specs(rendered[overlay]).items():
        for container in _containers(pod):
            password = _env(container).get("DATABASE_PASSWORD")
            assert password, f"{workload}/{container['name']} has no DATABASE_PASSWORD"
            assert password["valueFrom"]["secretKeyRef"] == CNPG_APP_SECRET, f"{workload}/{container['name']}"


def test_the_dev_overlay_brings_its_own_one_instance_database(rendered):
    docs = rendered["dev"]
    cluster = _one(docs, "Cluster", "lending-db")
    assert cluster["spec"]["instances"] == 1
    assert _config(docs)["DATABASE_HOST"] == "lending-db-rw"
    assert cluster["metadata"]["labels"]["app.kubernetes.io/component"] == "database"
