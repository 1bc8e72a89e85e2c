"""Shared fixtures: the reference peers in-process on free ports, a JSON API client, factories, and
the PostgreSQL gate (skip on SQLite with a reason, fail under CI=true)."""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass

import pytest
from django.db import connection
from rest_framework.test import APIClient

from lending.clients.http import all_peer_clients
from tools.reference_peers import BookPeer, FeesPeer, NotificationPeer, UserPeer


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def pytest_report_header(config):
    """Which database this run uses, first thing in the output (config/test_database.py chose it)."""
    from config import test_database

    return f"database: {test_database.description()}"


@pytest.fixture(autouse=True)
def _postgres_gate(request):
    if request.node.get_closest_marker("postgres") and not on_postgresql():
        reason = "needs PostgreSQL (row locks across connections, SKIP LOCKED); none reachable"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _crowd_lock(request):
    """A test marked `many_connections` runs alone among such tests on this machine (tests/racing.py:
    `make test`'s two workers share the server's connections)."""
    if request.node.get_closest_marker("many_connections") is None:
        yield
        return
    from tests.racing import one_crowd_at_a_time

    with one_crowd_at_a_time():
        yield


@dataclass
class Peers:
    book: BookPeer
    user: UserPeer
    notification: NotificationPeer
    fees: FeesPeer

    def all(self):
        return (self.book, self.user, self.notification, self.fees)

    def env(self) -> dict[str, str]:
        """Peer URLs as environment variables, for subprocesses."""
        return {
            "BOOK_MANAGEMENT_URL": self.book.url,
            "USER_MANAGEMENT_URL": self.user.url,
            "NOTIFICATION_SERVICE_URL": self.notification.url,
            "FEES_SERVICE_URL": self.fees.url,
        }


@pytest.fixture(scope="session")
def _running_peers():
    peers = Peers(BookPeer().start(), UserPeer().start(), NotificationPeer().start(), FeesPeer().start())
    yield peers
    for peer in peers.all():
        peer.stop()


@pytest.fixture
def peers(_running_peers, settings):
    """The reference peers, fault-free, with our settings pointing at them and breakers closed."""
    settings.BOOK_MANAGEMENT_URL = _running_peers.book.url
    settings.USER_MANAGEMENT_URL = _running_peers.user.url
    settings.NOTIFICATION_SERVICE_URL = _running_peers.notification.url
    settings.FEES_SERVICE_URL = _running_peers.fees.url
    for peer in _running_peers.all():
        peer.faults.clear()
    for client in all_peer_clients():
        client.breaker.close()
    yield _running_peers
    for peer in _running_peers.all():
        peer.faults.clear()
    for client in all_peer_clients():
        client.breaker.close()


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def patron(peers):
    """A fresh active patron known to the User peer."""
    import uuid

    return peers.user.add_user(f"patron-{uuid.uuid4().hex[:10]}@example.com")["email"]


@pytest.fixture
def book(peers):
    """A fresh one-copy book known to the Book peer."""
    return peers.book.add_book("Test book", "Test Author", 1)


def post_json(api: APIClient, path: str, body, **headers):
    return api.post(path, body, format="json", headers=headers or None)


@pytest.fixture
def log_lines():
    """Every record reaching the root logger, rendered by the production formatter, parsed."""
    from lending.observability.logs import json_formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        root.removeHandler(handler)


@pytest.fixture(autouse=True)
def _fresh_circulation_rules():
    """Each test reads the circulation rules of its own database state, not a copy an earlier test's
    (rolled back) changes left in this process."""
    from lending import circulation_rules

    circulation_rules.forget_cached()
    yield
    circulation_rules.forget_cached()
