"""Issue 14 items 2 and 3 in Compose: Redis is the cache every process shares, and the relay and the
scheduler publish their /metrics port with a health check on /health/live. scripts/check_compose.py
refuses a CACHE_URL that names no Redis service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_app_process_shares_the_redis_cache():
    services = _services()
    assert "redis" in services["redis"]["image"]
    for name in ("web", "relay", "notices"):
        assert services[name]["environment"]["CACHE_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_relay_and_scheduler_publish_metrics_and_a_liveness_check():
    services = _services()
    for name, port in (("relay", 9101), ("notices", 9102)):
        service = services[name]
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert f"http://127.0.0.1:{port}/health/live" in service["healthcheck"]["test"][-1]
        assert service["environment"]["METRICS_ADDRESS"] == "0.0.0.0"
    assert services["relay"]["environment"]["RELAY_METRICS_PORT"] == "9101"
    assert services["notices"]["environment"]["SCHEDULER_METRICS_PORT"] == "9102"


def test_check_compose_refuses_a_cache_url_without_its_service(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("redis://redis:6379", "redis://cache:6379"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_compose.py"), str(broken)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "CACHE_URL names 'cache', which is no service of this file" in proc.stderr
