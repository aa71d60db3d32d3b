# syntax=docker/dockerfile:1
# One image for every WorkStream process: `workstream-api` (default), `workstream-worker`, `workstream`.
#   docker build -t workstream .
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -p 8080:8080 workstream
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 workstream workstream-worker
# Your handlers: put their package under /opt/handlers (on PYTHONPATH) and set WORKER_HANDLERS,
# by a bind mount (compose override) or in an image built FROM this one:
#   FROM workstream:local
#   COPY myapp /opt/handlers/myapp

ARG PYTHON_IMAGE=python:3.12-slim

# ---- builder: build the wheel and install it, with its dependencies, into a venv ----------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The whole (dockerignored) context: pyproject.toml, README, workstream/ and the api/worker/common/cli
# folders its symlinks point to. The import check proves the one package installed and that
# nothing generic ("api", "common", ...) reached site-packages.
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install /wheels/*.whl \
    && test -x /opt/venv/bin/workstream-api \
    && test -x /opt/venv/bin/workstream-worker \
    && test -x /opt/venv/bin/workstream \
    && cd / && python -c "import workstream.api.__main__, workstream.worker.__main__, workstream.cli.__main__" \
    && python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('api', 'common', 'worker', 'cli')))"

# ---- runtime: the venv only, no build context, no compilers, non-root ---------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="workstream" \
      org.opencontainers.image.description="Redis-backed distributed job queue: API and worker"

# Same base image as the builder, so the venv's interpreter path (/usr/local/bin/python3.12) holds.
COPY --from=builder /opt/venv /opt/venv

RUN groupadd --system --gid 10001 workstream \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin workstream \
    && mkdir -p /opt/handlers

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/handlers \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8080

WORKDIR /tmp
USER 10001:10001
EXPOSE 8080

# urllib raises on connection errors and on any non-2xx (a 503 means Redis is unreachable), so
# the exit status is the verdict. Only the API serves HTTP: compose gives workers their own
# check (python -m workstream.worker.check, heartbeat age).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)" \
        "http://127.0.0.1:${PORT:-8080}/health" || exit 1

CMD ["workstream-api"]
