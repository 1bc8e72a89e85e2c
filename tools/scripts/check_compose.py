"""Check the Compose files beyond their JSON schema.

The schema itself (the Compose specification) is checked by check-jsonschema
with its bundled copy; this adds the cross-references `docker compose config`
would reject: depends_on targets, networks and named volumes that exist, and
one-shot services that are not restarted; that a redis:// CACHE_URL names
a Redis service of the file, which requires the password the URL carries; and
that every image pulled rather than built is pinned by digest.

Usage: python tools/scripts/check_compose.py docker-compose.yml [more.yml ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# name:tag@sha256:<64 hex>: the tag for people, the digest for the registry.
PINNED_IMAGE = re.compile(r"^[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}$")


def check(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    errors: list[str] = []
    services = doc.get("services") or {}
    networks = set((doc.get("networks") or {}).keys())
    volumes = set((doc.get("volumes") or {}).keys())
    if not services:
        errors.append("no services")
    for name, svc in services.items():
        where = f"{path.name}: service {name}"
        if "image" not in svc and "build" not in svc:
            errors.append(f"{where}: neither image nor build")
        if "build" not in svc and not PINNED_IMAGE.match(str(svc.get("image", ""))):
            errors.append(f"{where}: image {svc.get('image')!r} is not pinned by digest (name:tag@sha256:...)")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            if dep not in services:
                errors.append(f"{where}: depends_on unknown service {dep!r}")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if condition not in CONDITIONS:
                errors.append(f"{where}: unknown condition {condition!r}")
            target = services[dep]
            if condition == "service_healthy":
                hc = target.get("healthcheck") or {}
                if not hc.get("test") or hc.get("disable"):
                    errors.append(f"{where}: waits for {dep} to be healthy but {dep} has no health check")
            if condition == "service_completed_successfully" and target.get("restart", "no") != "no":
                errors.append(f"{where}: waits for {dep} to complete but {dep} restarts ({target.get('restart')})")
        svc_networks = svc.get("networks") or []
        for net in svc_networks if isinstance(svc_networks, list) else svc_networks.keys():
            if net not in networks:
                errors.append(f"{where}: undeclared network {net!r}")
        for mount in svc.get("volumes") or []:
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            is_named = source and not source.startswith((".", "/", "~", "$"))
            if is_named and source not in volumes:
                errors.append(f"{where}: undeclared volume {source!r}")
        env = svc.get("environment") or {}
        if isinstance(env, dict):
            bad = [k for k, v in env.items() if v is not None and not isinstance(v, str | int | float | bool)]
            if bad:
                errors.append(f"{where}: non-scalar environment values {bad}")
            errors += check_cache_url(where, env.get("CACHE_URL"), services)
    if len(networks) != 1:
        errors.append(f"{path.name}: expected exactly one (isolated) network, found {sorted(networks)}")
    return errors


def check_cache_url(where: str, url: object, services: dict) -> list[str]:
    """A redis:// CACHE_URL must name a service of this file that runs Redis, with the password
    that Redis requires (--requirepass from the service's REDIS_PASSWORD)."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://")):
        return []
    parts = urlsplit(url)
    host = parts.hostname or ""
    target = services.get(host)
    if target is None:
        return [f"{where}: CACHE_URL names {host!r}, which is no service of this file"]
    if "redis" not in str(target.get("image", "")):
        return [f"{where}: CACHE_URL names {host!r}, which does not run a redis image"]
    if "--requirepass" not in str(target.get("command", "")):
        return [f"{where}: CACHE_URL names {host!r}, which requires no password (--requirepass)"]
    password = (target.get("environment") or {}).get("REDIS_PASSWORD")
    if not parts.password or parts.password != password:
        return [f"{where}: CACHE_URL does not carry {host}'s REDIS_PASSWORD"]
    return []


def main(argv: list[str]) -> int:
    failed = False
    for arg in argv:
        errors = check(Path(arg))
        for error in errors:
            print(f"compose: {error}", file=sys.stderr)
        failed = failed or bool(errors)
        if not errors:
            print(f"compose: {arg}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
