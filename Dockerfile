# syntax=docker/dockerfile:1.7
# Lending Management service: one image, several roles (see docker/entrypoint.sh).
#   docker build -t lending-service:dev .
#   docker run --rm -p 8000:8000 -e DJANGO_SECRET_KEY=... lending-service:dev web
# The `test` stage (docker-compose.test.yml) adds the test dependencies; the
# default target is the last stage, `runtime`. Both base stages use the same
# Python image, pinned by tag and by the digest of its multi-platform index: a
# rebuild of the tag upstream changes nothing here until the digest is moved.
# To move it: docker buildx imagetools inspect python:3.11.14-slim-bookworm
# (the "Digest:" line), then replace it in both FROM lines.

# ---------------------------------------------------------------------------
# Stage 1: build every wheel and install them into a virtualenv.
# ---------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers live in this stage only, for any dependency without a wheel.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*

# The hashed locks (`make lock`): pip refuses any package, transitive ones included, whose version or
# sha256 the lock does not name.
COPY requirements/pip.lock.txt requirements/base.lock.txt /tmp/requirements/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements/pip.lock.txt \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements/base.lock.txt

# ---------------------------------------------------------------------------
# Stage 2: the runtime base shared by the `test` and `runtime` targets.
# No compilers, no wheels, no pip cache: only the virtualenv and the code.
# ---------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS base

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_DEBUG=False \
    LOG_FORMAT=json \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    APP_DIR=/app

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# The code is owned by root and read-only for the service user.
# pyproject.toml: the version lending_build_info reports.
COPY manage.py pyproject.toml ./
COPY config/ ./config/
COPY lending/ ./lending/
COPY tools/__init__.py ./tools/
COPY tools/reference_peers/ ./tools/reference_peers/
COPY sip_gateway/ ./sip_gateway/
COPY docker/ ./docker/

# ---------------------------------------------------------------------------
# Target `test`: the suite against PostgreSQL (docker-compose.test.yml).
# ---------------------------------------------------------------------------
FROM base AS test

# The test lock holds the run lock's versions unchanged (tools/scripts/check_locks.py), plus the test tools.
COPY requirements/test.lock.txt /tmp/requirements/
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements/test.lock.txt
# The whole (filtered) context: pytest settings, conftest and tests included.
COPY --chown=app:app . ./
USER 10001:10001
ENTRYPOINT []
CMD ["python", "-m", "pytest", "-p", "no:cacheprovider", "--ignore=tests/deploy"]

# ---------------------------------------------------------------------------
# Target `runtime` (default): the production image.
# ---------------------------------------------------------------------------
FROM base AS runtime

# The commit the image is built from, reported by lending_build_info:
#   docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" .
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}

# Static files are collected at build time (served by WhiteNoise). The key
# below exists only for this build step and is never used at run time.
RUN DJANGO_SECRET_KEY=collectstatic-only-not-a-secret \
    DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput \
    && python -m compileall -q /app/config /app/lending /app/tools /app/sip_gateway

USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live/', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
