"""The deploy tests' shared fixture: the entrypoint roles' environment (tests/deploy/roles.py)."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import render_overlays
from tests.deploy.roles import role_environment


@pytest.fixture(scope="module")
def role_env(tmp_path_factory) -> dict[str, str]:
    """Production-like settings on a throw-away SQLite database, migrated; the peers pointing nowhere."""
    return role_environment(tmp_path_factory.mktemp("roles"))


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    """Both overlays, rendered (tests/deploy/manifests.py)."""
    return render_overlays()
