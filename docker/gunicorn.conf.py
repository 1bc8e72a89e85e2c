"""Gunicorn settings for the web role (read by ``gunicorn -c``).

Every knob is an environment variable so one image serves every
environment: GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_BIND,
GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE,
GUNICORN_MAX_REQUESTS, GUNICORN_MAX_REQUESTS_JITTER, GUNICORN_ACCESS_LOG,
GUNICORN_FORWARDED_ALLOW_IPS, LOG_LEVEL, PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import glob
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


wsgi_app = "config.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")]

# gthread: a few processes, each with a pool of threads. Peer calls are I/O
# bound and have explicit timeouts, so threads keep a worker responsive.
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 4)

timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)

# The heartbeat file lives in memory: the root filesystem is read-only in
# Kubernetes and /dev/shm is always a writable tmpfs.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm")
# The control socket would be created under $HOME, which is read-only.
control_socket_disable = True

# The application logs one structured line per request; gunicorn's own access
# log is off unless GUNICORN_ACCESS_LOG names a target ("-" for stdout).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "lending-web"


def _multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def on_starting(server) -> None:
    """Start each master with an empty Prometheus multi-process directory."""
    path = _multiproc_dir()
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges from the multi-process registry."""
    if not _multiproc_dir():
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
