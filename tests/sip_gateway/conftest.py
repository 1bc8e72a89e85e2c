"""The gateway in-process: its asyncio loop on a thread of the test, calling a live server of the
lending API (pytest-django's `live_server`, with API keys required) that calls the reference peers.
Kiosk accounts are real accounts (their API keys sealed under their passwords)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings

from sip_gateway import accounts
from sip_gateway.accounts import Authenticator
from sip_gateway.api_client import LendingApi
from sip_gateway.messages import Kiosk
from sip_gateway.server import Gateway, GatewayConfig
from tests.sip_gateway.client import SipClient

PASSWORD = "kiosk-test-password"


class RunningGateway:
    """A gateway serving on a free port from its own event loop thread."""

    def __init__(self, api_url: str, **config: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sip-gateway-test", daemon=True)
        self.thread.start()
        kiosk = Kiosk(LendingApi(api_url), Authenticator(), ZoneInfo(django_settings.LIBRARY_TIME_ZONE))
        self.gateway = Gateway(kiosk, GatewayConfig(host="127.0.0.1", port=0, **config))
        self._run(self.gateway.start())

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    @property
    def port(self) -> int:
        return self.gateway.port

    def client(self, **options) -> SipClient:
        return SipClient(self.port, **options)

    def stop(self) -> None:
        self._run(self.gateway.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def api_keys_required(settings):
    settings.REQUIRE_API_KEY = True
    settings.API_KEY_CACHE_SECONDS = 0


@pytest.fixture
def kiosk_account(transactional_db):
    return accounts.create_account(f"kiosk-{uuid.uuid4().hex[:8]}", PASSWORD, institution="test-library")


@pytest.fixture
def no_block_account(transactional_db):
    return accounts.create_account(
        f"offline-{uuid.uuid4().hex[:8]}", PASSWORD, institution="test-library", allow_no_block=True
    )


@pytest.fixture
def short_lived_connections():
    """The live server answers each request on a thread of its own: with persistent connections each
    would leave its connection open past the test (and the test database could not be dropped)."""
    from django.db import connections

    default = connections.settings["default"]
    kept = default["CONN_MAX_AGE"]
    default["CONN_MAX_AGE"] = 0
    yield
    default["CONN_MAX_AGE"] = kept


@pytest.fixture
def running_gateway(short_lived_connections, live_server, peers, api_keys_required) -> Iterator[RunningGateway]:
    running = RunningGateway(live_server.url)
    yield running
    running.stop()


@pytest.fixture
def kiosk(running_gateway, kiosk_account) -> Iterator[SipClient]:
    """A connection logged in with the kiosk account."""
    with running_gateway.client() as client:
        assert client.login(kiosk_account.login, PASSWORD).text.startswith("941")
        yield client
