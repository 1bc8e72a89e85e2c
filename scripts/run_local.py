"""`make run`: the whole service locally in one process tree — the reference peers, the web server on
http://127.0.0.1:8000 (SQLite by default), the outbox relay and the scheduled notices. Ctrl-C stops all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WEB = "127.0.0.1:8000"

PROCESSES = {
    "peers": [PYTHON, "-m", "reference_peers", "--demo-books", "100", "--demo-users", "100"],
    # The production server and settings file, so local runs behave like a deployment
    # (runserver's short listen queue resets connections under a burst of clients).
    "web": [PYTHON, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py"],
    "relay": [PYTHON, "manage.py", "relay_outbox"],
    "notices": [PYTHON, "manage.py", "send_notices", "--loop"],
}

BANNER = f"""
Lending service running:
  API         http://{WEB}/lendBook/  /returnBook/  /getExpiredBooks/  /health/  (and /loans/, /renewBook/, ...)
  API docs    http://{WEB}/api/docs/    Admin  http://{WEB}/admin/    Metrics  http://{WEB}/metrics
  Book peer   http://127.0.0.1:8001/getBooks/1      User peer  http://127.0.0.1:8002/users/alice@example.com
  Notices     http://127.0.0.1:8003/notifications
Try:
  curl -X POST http://{WEB}/lendBook/ -H 'Content-Type: application/json' \\
       -d '{{"user_email": "alice@example.com", "book_id": 1}}'
Ctrl-C stops everything.
"""


def main() -> int:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "GUNICORN_BIND": WEB,
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "8",
    }
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    children = {name: subprocess.Popen(cmd, cwd=ROOT, env=env) for name, cmd in PROCESSES.items()}
    print(BANNER, flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with status {child.returncode}; stopping everything.", flush=True)
                exit_code, stopping = child.returncode or 1, True
        time.sleep(0.3)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
