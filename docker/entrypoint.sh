#!/bin/sh
# One image, several roles. Usage: entrypoint.sh ROLE [ARGS...]
#   web      gunicorn serving the API (docker/gunicorn.conf.py)
#   relay    the transactional-outbox relay (long-running)
#   notices  scheduled notices; runs once, or forever with --loop
#   migrate  apply database migrations, then exit
#   peers    the reference Book/User/Notification/Fees peers (ports 8001-8004)
#   sip      the SIP2 gateway for self-check kiosks (python -m sip_gateway; SIP_PORT, 6001)
#   manage   any other manage.py command, e.g. `manage createsuperuser`
# Anything else is executed as given (e.g. `sh` for a debugging shell).
set -eu

APP_DIR="${APP_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$APP_DIR"
PYTHON="${PYTHON:-python}"

# Prometheus multi-process mode keeps one file per process in this directory;
# it must exist before the first metric is touched, and start empty.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

role="${1:-web}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$role" in
    web)
        if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
            rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
        fi
        exec "$PYTHON" -m gunicorn --config "$APP_DIR/docker/gunicorn.conf.py" "$@"
        ;;
    relay)
        exec "$PYTHON" manage.py relay_outbox "$@"
        ;;
    notices)
        exec "$PYTHON" manage.py send_notices "$@"
        ;;
    migrate)
        # Longer limits than a request's: a data migration may run for minutes, and an ALTER TABLE may
        # wait a little for its lock (requests give up on theirs after DATABASE_LOCK_TIMEOUT_MS).
        DATABASE_STATEMENT_TIMEOUT_MS="${MIGRATE_STATEMENT_TIMEOUT_MS:-600000}" \
            DATABASE_LOCK_TIMEOUT_MS="${MIGRATE_LOCK_TIMEOUT_MS:-10000}" \
            exec "$PYTHON" manage.py migrate --noinput "$@"
        ;;
    sip)
        exec "$PYTHON" -m sip_gateway "$@"
        ;;
    peers)
        exec "$PYTHON" -m tools.reference_peers --host "${PEERS_HOST:-0.0.0.0}" "$@"
        ;;
    manage)
        exec "$PYTHON" manage.py "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
