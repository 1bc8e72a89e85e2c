"""Gunicorn settings for the web role (read by ``gunicorn -c``).

Every knob is an environment variable so one image serves every
environment: GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_BIND,
GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE,
GUNICORN_MAX_REQUESTS, GUNICORN_MAX_REQUESTS_JITTER, GUNICORN_ACCESS_LOG,
GUNICORN_FORWARDED_ALLOW_IPS, GUNICORN_HEADER_TIMEOUT, GUNICORN_BODY_TIMEOUT,
GUNICORN_WORKER_CONNECTIONS, GUNICORN_WORKER_CLASS, LOG_LEVEL,
PROMETHEUS_MULTIPROC_DIR.
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
# A lend is ~13 database round trips and 2 peer calls: it mostly waits, so
# 16 threads per worker lend ~2x faster than 4 on 2 cores (`make bench`), and
# a hung peer ties up a few threads, not the worker. Each thread keeps its
# own database connection (CONN_MAX_AGE): budget workers x threads x replicas.
#
# The worker is gthread's, except that its event loop reads each request whole
# (head within GUNICORN_HEADER_TIMEOUT, body within GUNICORN_BODY_TIMEOUT
# seconds) before a thread sees it: a slow or stalled client costs a buffer,
# never a thread (config/gunicorn_worker.py). GUNICORN_WORKER_CLASS=gthread
# brings back the stock worker, for comparison only (`make bench`).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "config.gunicorn_worker.BufferingWorker"
# Connections per worker, slow ones included; beyond it the worker stops accepting.
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 1000)
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 16)

timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycling a worker stalls its requests while the new one boots Django: with
# 1000, `make bench` saw p99 of 2-3.7 s and ~45 % fewer requests/s than with
# recycling off (p99 0.2 s). Off by default; set it only to contain a leak.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)

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
# X-Forwarded-* (the scheme above all) is believed from these addresses only. None by
# default, not even localhost: on `make run` any local client could claim HTTPS. Name
# the ingress or proxy addresses here when one terminates TLS in front.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", os.environ.get("TRUSTED_PROXIES", ""))
proc_name = "lending-web"
# gunicorn's own lines in the service's log format (JSON objects under LOG_FORMAT=json).
logconfig_dict = __import__("lending.observability.logs", fromlist=["_"]).gunicorn_logconfig_dict()
# gunicorn's logger, building the access line only when GUNICORN_ACCESS_LOG asks for it.
logger_class = __import__("lending.observability.logs", fromlist=["_"]).gunicorn_logger_class()


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


def post_worker_init(worker) -> None:
    """Log the database session limits each worker's sessions get (a pooler may drop the ones the
    connection asks for: lending/db_session.py)."""
    from lending.db_session import log_session_timeouts

    log_session_timeouts("web")
