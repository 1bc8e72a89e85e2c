"""Issue 14 items 2 and 3 in Compose: Redis is the cache every process shares, and the relay and the
scheduler publish their /metrics port with a health check on /health/live. tools/scripts/check_compose.py
refuses a CACHE_URL that names no Redis service. Issue 27: Redis is a fixed release pinned by digest
and requires the password that CACHE_URL carries; every pulled image is pinned by digest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_app_process_shares_the_redis_cache():
    services = _services()
    assert "redis" in services["redis"]["image"]
    for name in ("web", "relay", "notices"):
        assert services[name]["environment"]["CACHE_URL"] == "redis://:lending-dev-redis-password@redis:6379/0"
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
    broken.write_text(COMPOSE.read_text().replace("@redis:6379", "@cache:6379"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "scripts" / "check_compose.py"), str(broken)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "CACHE_URL names 'cache', which is no service of this file" in proc.stderr


def test_redis_is_a_fixed_release_with_the_password_cache_url_carries():
    redis = _services()["redis"]
    # 7.4.6 carries the fixes of CVE-2025-21605 and CVE-2025-49844; by tag and by digest.
    match = re.fullmatch(r"redis:(\d+)\.(\d+)\.(\d+)-alpine@sha256:[0-9a-f]{64}", redis["image"])
    assert match, redis["image"]
    assert tuple(int(part) for part in match.groups()) >= (7, 4, 6)
    password = redis["environment"]["REDIS_PASSWORD"]
    assert password and redis["environment"]["REDISCLI_AUTH"] == password
    assert '--requirepass "$$REDIS_PASSWORD"' in redis["command"][-1]
    assert urlsplit(_services()["web"]["environment"]["CACHE_URL"]).password == password


def test_every_pulled_image_is_pinned_by_digest():
    for path in (COMPOSE, ROOT / "docker-compose.test.yml"):
        for name, service in yaml.safe_load(path.read_text())["services"].items():
            if "build" not in service:
                assert re.fullmatch(r"[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}", service["image"]), (path.name, name)


def test_check_compose_refuses_an_unpinned_image_and_a_cache_url_without_the_password(tmp_path):
    text = COMPOSE.read_text()
    broken = tmp_path / "docker-compose.yml"
    unpinned = re.sub(r"image: (redis:[^@\s]+)@sha256:[0-9a-f]{64}", r"image: \1", text)
    broken.write_text(unpinned.replace("redis://:lending-dev-redis-password@redis", "redis://redis"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "scripts" / "check_compose.py"), str(broken)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "service redis: image 'redis:7.4.6-alpine' is not pinned by digest" in proc.stderr
    assert "service web: CACHE_URL does not carry redis's REDIS_PASSWORD" in proc.stderr
