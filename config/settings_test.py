"""Test settings: PostgreSQL when one is reachable, SQLite otherwise.

`DATABASE_URL` wins; else the local server on 127.0.0.1:5432 is used when it answers. Each test run
gets its own database name so parallel runs on one server do not collide.
"""

import os
import socket

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key")
if not os.environ.get("DATABASE_URL"):
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/postgres"
    except OSError:
        pass

from config.settings import *  # noqa: E402,F403
from config.settings import BASE_DIR, DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file rather than memory, so that threads and subprocesses of a test see the same data.
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_lending_{os.getpid()}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Fast, deterministic outbox backoff in tests.
OUTBOX_BACKOFF_BASE_SECONDS = 0.05
OUTBOX_BACKOFF_MAX_SECONDS = 0.2
PEER_BREAKER_RESET_SECONDS = 1.0
# Service keys and rate limits are off unless a test turns them on (`settings` fixture).
REQUIRE_API_KEY = False
THROTTLE_RATE_PER_KEY = None
THROTTLE_RATE_PER_IP = None
AUTH_FAILURES_PER_MINUTE = 0
# Static files (admin, API docs) from the apps' folders: no collectstatic before tests.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
