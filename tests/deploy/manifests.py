"""The Kubernetes manifests as a cluster would get them: rendered with kustomize (or kubectl's), offline.
Without either tool the tests that need them skip, or fail under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tools.harness import ROOT

IN_CI = os.environ.get("CI", "").lower() == "true"
OVERLAYS = ("dev", "prod")


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def renderer() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(path: Path) -> list[dict]:
    """Every document a kustomization at `path` renders to."""
    command = renderer()
    if command is None:
        unavailable("neither kustomize nor kubectl is installed: the manifests cannot be rendered")
        raise AssertionError("unreachable")
    out = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def render_overlays() -> dict[str, list[dict]]:
    return {overlay: render(ROOT / "k8s" / "overlays" / overlay) for overlay in OVERLAYS}
