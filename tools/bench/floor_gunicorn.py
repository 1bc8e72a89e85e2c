"""Gunicorn settings of the floor (tools/bench/floor.py): the service's own (docker/gunicorn.conf.py: worker class,
workers, threads, keep-alive, timeouts, the same environment variables), serving `tools.bench.floor:application`,
without the service's hooks and log configuration (they need Django, which the floor does not load)."""

from __future__ import annotations

import runpy

from tools.harness import ROOT

_service = runpy.run_path(str(ROOT / "docker" / "gunicorn.conf.py"))

wsgi_app = "tools.bench.floor:application"
bind = _service["bind"]
worker_class = _service["worker_class"]
worker_connections = _service["worker_connections"]
workers = _service["workers"]
threads = _service["threads"]
timeout = _service["timeout"]
graceful_timeout = _service["graceful_timeout"]
keepalive = _service["keepalive"]
max_requests = _service["max_requests"]
max_requests_jitter = _service["max_requests_jitter"]
worker_tmp_dir = _service["worker_tmp_dir"]
control_socket_disable = True
errorlog = "-"
loglevel = _service["loglevel"]
proc_name = "lending-floor"
