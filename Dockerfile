# syntax=docker/dockerfile:1
# TAC Gateway image: one image for the gateway (`serve`, the default) and for the schema
# migration Job (`docker run IMAGE migrate`). Built in two stages so that the runtime image
# holds the virtualenv (with the policies as package data), not pip's build tree.
#
#   docker build -t tac-gateway:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v tacgw:/var/lib/tacgw -p 8080:8080 tac-gateway:0.1.0
#
# Read-only root filesystem: nothing is written outside the /var/lib/tacgw volume and /tmp
# (the bytecode is compiled at build time; the SQLite default and the signing key live in
# the volume). tests/deploy/test_dockerfile.py checks these properties.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/tacgw
WORKDIR /src
COPY pyproject.toml setup.py requirements.lock ./
COPY gateway ./gateway
COPY policies ./policies
# The runtime dependencies exactly as locked, each wheel checked against its hash; then a
# regular (not editable) install of the package alone (--no-deps: nothing unpinned), as
# scripts/install-venv does. The runtime stage copies the venv alone. The policies go in
# as package data (gateway.policies), the default policy_dir of an installed gateway.
RUN /opt/tacgw/bin/pip install --no-compile --require-hashes -r requirements.lock \
    && /opt/tacgw/bin/pip install --no-compile --no-deps . \
    && /opt/tacgw/bin/python -m compileall -q -j 0 /opt/tacgw/lib

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it without a passwd.
RUN groupadd --system --gid 10001 tacgw \
    && useradd --system --uid 10001 --gid tacgw --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin tacgw \
    && install -d -o tacgw -g tacgw -m 0700 /var/lib/tacgw

COPY --from=build /opt/tacgw /opt/tacgw

ENV PATH=/opt/tacgw/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TACGW_SIGNING_KEY_FILE=/var/lib/tacgw/signing-key.pem \
    TACGW_AUDIT_LOG__KEY_FILE=/var/lib/tacgw/audit-log-key.pem \
    TACGW_DATABASE_URL=sqlite:////var/lib/tacgw/tacgw.db

# The only writable place besides /tmp; Kubernetes mounts an emptyDir or a Secret here.
VOLUME ["/var/lib/tacgw"]
WORKDIR /app
USER 10001:10001
EXPOSE 8080

# No curl in the slim image: the interpreter that is there does the probe.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

ENTRYPOINT ["tac-gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
