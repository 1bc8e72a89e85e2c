"""The gateway assembled: the accounts, the API client, the kiosk messages, the SIP2 server, and
`/metrics` and `/health/live` on their own port (lending/observability/ops_server.py, as the relay and the
scheduler serve theirs). The liveness check fails when the event loop stops making progress."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import structlog
from django.conf import settings

from lending.observability import ops_server
from sip_gateway.accounts import Authenticator
from sip_gateway.api_client import LendingApi
from sip_gateway.messages import Kiosk
from sip_gateway.server import Gateway, GatewayConfig, thread_pool

logger = structlog.get_logger("sip_gateway")

HEARTBEAT_SECONDS = 5.0
# The loop is called stalled after this long without a heartbeat (a blocking call on it, a hang).
STALL_AFTER_SECONDS = 60.0


def build_gateway(*, host: str, port: int, api_url: str) -> Gateway:
    config = GatewayConfig(
        host=host, port=port, login_timeout=settings.SIP_LOGIN_TIMEOUT, idle_timeout=settings.SIP_IDLE_TIMEOUT
    )
    kiosk = Kiosk(LendingApi(api_url), Authenticator(), ZoneInfo(settings.LIBRARY_TIME_ZONE))
    return Gateway(kiosk, config)


async def run(*, host: str, port: int, api_url: str, metrics_port: int, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(thread_pool())  # the API calls' and logins' threads
    heartbeat = ops_server.Heartbeat("sip_gateway", stall_after=STALL_AFTER_SECONDS)
    ops = ops_server.start(heartbeat, metrics_port, address=settings.METRICS_ADDRESS, domain_state=False)
    gateway = build_gateway(host=host, port=port, api_url=api_url)
    await gateway.start()
    logger.info("sip_gateway_started", host=host, port=gateway.port, api_url=api_url, metrics_port=metrics_port)
    beating = asyncio.create_task(_beat(heartbeat, stop))
    try:
        await stop.wait()
    finally:
        beating.cancel()
        await gateway.close()
        if ops is not None:
            ops.shutdown()
        logger.info("sip_gateway_stopped")


async def _beat(heartbeat: ops_server.Heartbeat, stop: asyncio.Event) -> None:
    while not stop.is_set():
        heartbeat.progress()
        await asyncio.sleep(HEARTBEAT_SECONDS)
