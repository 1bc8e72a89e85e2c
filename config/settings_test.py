"""Test settings: PostgreSQL on any machine (see config/test_database.py), SQLite when asked.

`DATABASE_URL` wins (`sqlite:///…` for the SQLite pass of `make test`); else the local server on
127.0.0.1:5432 when it answers; else a throwaway PostgreSQL of the run's own. Each test run gets its
own database name so parallel runs on one server do not collide.
"""

import os

from config import test_database

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key")
test_database.choose()

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
