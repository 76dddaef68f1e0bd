# Herald container image.
#
#   docker build -t herald:dev .
#   docker run --rm -e HERALD_AMQP_URL=amqp://... -p 9464:9464 herald:dev          # herald run
#   docker run --rm herald:dev topology declare                                    # other commands
#
# The builder builds Herald's wheel and installs it, not editable, into /opt/venv; the runtime
# stage copies only that venv: no source tree, the templates and other data come from the
# wheel (package data, found with importlib.resources).

# --- builder: a venv with the runtime dependencies and the herald wheel -------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Runtime dependencies only ([project.dependencies]; not the dev or bench extras) and the build
# backend, at the exact versions and file hashes of requirements.lock (scripts/lock.sh compiles
# it from pyproject.toml), so that two builds a month apart install the same code. In
# hash-checking mode pip also refuses a dependency the lock does not pin. Their own layer: a
# source change does not reinstall them.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock \
    && pip check

# The rooms (linked into herald/ as herald.consumers, ...) and the templates; .dockerignore
# keeps tests, bench, docs and deploy out.
COPY . .
# The wheel is built with the locked setuptools (no build isolation, which would fetch the
# newest), and installed without dependencies: they are the locked ones above.
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation -w /wheels . \
    && pip install --no-cache-dir --no-deps /wheels/herald-*.whl \
    && pip check

# --- runtime -------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="herald" \
      org.opencontainers.image.description="Herald: the notification service of the marketplace and partner portal" \
      org.opencontainers.image.source="https://github.com/herald/herald" \
      org.opencontainers.image.version="0.1.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --home-dir /var/lib/herald \
        --shell /usr/sbin/nologin herald \
    && install -d -o herald -g herald -m 0750 /var/lib/herald

COPY --from=builder /opt/venv /opt/venv

# Writable working directory (a SQLite ledger, HERALD_DATABASE_URL=sqlite:///herald.db, lands
# here; use a volume to keep it).
WORKDIR /var/lib/herald
USER 10001:10001

# /metrics, /healthz, /readyz
EXPOSE 9464

# herald handles SIGTERM itself: it drains for up to HERALD_SHUTDOWN_GRACE_SECONDS (25 s) and
# exits, so the stop timeout of the orchestrator must be longer than that.
STOPSIGNAL SIGTERM

# Liveness only (/readyz answers 503 until the consumers are attached). The slim image has no
# curl: python's urllib raises, hence exits non-zero, on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HERALD_HTTP_PORT', '9464'), timeout=4)"]

ENTRYPOINT ["herald"]
CMD ["run"]
