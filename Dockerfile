# syntax=docker/dockerfile:1
# One image for the five services: `oncall run <service>` (the Deployments set the service in
# their args; without args the image runs alert_ingest).
#
#   docker build -t ghcr.io/oncall-agent/oncall:0.1.0 .
#
# The build stage makes a wheel of the project and installs it, with its dependencies, into a
# virtual environment; the final stage gets only that environment: no compilers, no pip
# caches, no sources or tests.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# pip precompiles the bytecode at install: the final image's root file system is read-only.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The venv lives where it will live in the final image: its scripts hard-code the path.
RUN python -m venv /opt/oncall
# What the wheel is built from (.dockerignore keeps everything else out of the context).
COPY pyproject.toml README.md ./
COPY services ./services
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/oncall/bin/pip install /wheels/*.whl \
 && /opt/oncall/bin/pip uninstall --yes pip \
 && /opt/oncall/bin/oncall --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="oncall-agent" \
      org.opencontainers.image.description="AI on-call engineer: Alertmanager in, diagnosis on WhatsApp" \
      org.opencontainers.image.source="https://github.com/oncall-agent/oncall" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed, unprivileged uid/gid: Kubernetes' runAsNonRoot can check a numeric USER.
RUN groupadd --gid 10001 oncall \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin oncall
COPY --from=build /opt/oncall /opt/oncall
ENV PATH=/opt/oncall/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ONCALL_HTTP_HOST=0.0.0.0 \
    ONCALL_HTTP_PORT=8080 \
    ONCALL_DATA_DIR=/tmp/oncall
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["oncall"]
CMD ["run", "alert_ingest"]
