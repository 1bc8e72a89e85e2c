"""`make bench` measures the service as it is deployed: the settings a benchmark must change, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from tools.bench.run import bench_env

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"web": 1, "floor": 2, "book": 3, "user": 4, "notification": 5, "fees": 6}


def deployed(setting: str) -> set[str]:
    """Every value the deployment's files give `setting` (the Kubernetes base, docker compose)."""
    texts = (ROOT / "k8s" / "base" / "kustomization.yaml").read_text() + (ROOT / "docker-compose.yml").read_text()
    return set(re.findall(rf"\b{setting}[=:]\s*(\w+)", texts))


def test_the_bench_runs_the_service_at_the_log_level_it_is_deployed_at(tmp_path):
    # At a quieter level no request would write its log line, and every figure would leave that cost out.
    assert deployed("LOG_LEVEL") == {bench_env("postgres://db/x", PORTS, tmp_path)["LOG_LEVEL"]}


def test_the_bench_service_is_in_production_mode_without_rate_limits(tmp_path):
    env = bench_env("postgres://db/x", PORTS, tmp_path)
    assert (env["DJANGO_DEBUG"], env["THROTTLE_RATE_PER_KEY"], env["THROTTLE_RATE_PER_IP"]) == ("false", "", "")
    assert env["DATABASE_URL"] == "postgres://db/x"
    assert env["GUNICORN_BIND"] == "127.0.0.1:1"
