"""The service's environment for a tool's run, and the reference peers' command line."""

from __future__ import annotations

import os
import secrets

from tools.harness.processes import HOST, PYTHON, wait_http

PEERS = ("book", "user", "notification", "fees")
PEER_URL_SETTINGS = {
    "book": "BOOK_MANAGEMENT_URL",
    "user": "USER_MANAGEMENT_URL",
    "notification": "NOTIFICATION_SERVICE_URL",
    "fees": "FEES_SERVICE_URL",
}


def peer_urls(ports: dict[str, int]) -> dict[str, str]:
    """BOOK_MANAGEMENT_URL and friends for the peers on `ports` ({"book": 18001, ...})."""
    return {setting: f"http://{HOST}:{ports[peer]}" for peer, setting in PEER_URL_SETTINGS.items()}


def service_env(database_url: str, peer_ports: dict[str, int], **overrides: str) -> dict[str, str]:
    """This process's environment plus what a production-like run of the service needs: the database, the
    peers, production settings with a fresh secret and no rate limits (tools drive it hard from one address)."""
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "harness-" + secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": f"{HOST},localhost",
        "SECURE_SSL_REDIRECT": "false",
        "THROTTLE_RATE_PER_KEY": "",
        "THROTTLE_RATE_PER_IP": "",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        **peer_urls(peer_ports),
        **overrides,
    }


def peers_command(ports: dict[str, int], demo_books: int = 0, demo_users: int = 0) -> list[str]:
    """`python -m tools.reference_peers` on `ports`, with that many extra demo books and patrons."""
    command = [PYTHON, "-m", "tools.reference_peers", "--demo-books", str(demo_books), "--demo-users", str(demo_users)]
    for peer in PEERS:
        command += [f"--{peer}-port", str(ports[peer])]
    return command


# A path each reference peer answers 200 on once it listens. `python -m tools.reference_peers` starts them
# one after the other, each listening only once its demo data is built: the Book peer answering says
# nothing of a User peer still making a million patrons.
PEER_READY_PATHS = {
    "book": "/getBooks/1",
    "user": "/users/alice@example.com",
    "notification": "/notifications",
    "fees": "/fees",
}


def wait_for_peers(ports: dict[str, int], timeout: float = 120.0) -> None:
    """Until every reference peer on `ports` answers; RuntimeError after `timeout` seconds for one of them."""
    for peer, path in PEER_READY_PATHS.items():
        wait_http(f"http://{HOST}:{ports[peer]}{path}", timeout)
