# The image of each Modelyard service, from one recipe. SERVICE, the service's directory under
# services/ (registry, deployer, gateway, device-agent), picks it. Build from the repository root:
#   docker build -f deploy/service.Dockerfile --build-arg SERVICE=deployer -t modelyard/deployer .
# (deploy/compose.yaml builds the four this way.) An image holds libs/common and its service,
# nothing else: no test support (libs/testkit), no clients.
# PYTHON_IMAGE is the official image by default; scripts/standin-images.sh seeds a local stand-in
# where no registry is reachable.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG SERVICE

FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/modelyard/bin:$PATH
WORKDIR /src
RUN test -n "$SERVICE" && python -m venv /opt/modelyard
# Third-party dependencies first, resolved from the pyproject files alone (empty source trees)
# and installed into the venv: this layer, and the runtime layer copying the venv, are rebuilt
# only when dependencies change, not on every source edit.
COPY libs/common/pyproject.toml libs/common/
COPY services/${SERVICE}/pyproject.toml services/${SERVICE}/
RUN mkdir -p libs/common/src services/${SERVICE}/src \
 && pip wheel -q --wheel-dir /wheels ./libs/common ./services/${SERVICE} \
 && rm /wheels/modelyard_*.whl \
 && pip install -q --no-index /wheels/*.whl \
 && rm -rf /wheels
# Then the wheels of libs/common and the service themselves.
COPY libs/common libs/common
COPY services/${SERVICE} services/${SERVICE}
RUN pip wheel -q --no-deps --wheel-dir /wheels ./libs/common ./services/${SERVICE}

# What every service's image has: the venv with the wheels installed, a non-root user.
FROM ${PYTHON_IMAGE} AS service
ENV PATH=/opt/modelyard/bin:$PATH PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN groupadd --system --gid 10001 modelyard \
 && useradd --system --uid 10001 --gid modelyard --create-home --home-dir /home/modelyard \
      --shell /usr/sbin/nologin modelyard
COPY --from=builder /opt/modelyard /opt/modelyard
COPY --from=builder /wheels /tmp/wheels
RUN pip install -q --no-deps --no-index /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && for script in /opt/modelyard/bin/modelyard-*; do "$script" --help >/dev/null || exit 1; done
WORKDIR /home/modelyard

# Each service's own stage: its port, state directory, health check and command. Healthy means
# ready to serve (database and broker reachable) for the services with a database, so compose
# dependents wait for it; those migrate their schema before they serve.

FROM service AS registry
ENV MODELYARD_REGISTRY_PORT=8001
EXPOSE 8001
HEALTHCHECK --interval=3s --timeout=3s --retries=5 --start-period=60s \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['MODELYARD_REGISTRY_PORT'], timeout=3)"]
CMD ["sh", "-c", "modelyard-registry migrate && exec modelyard-registry serve --host 0.0.0.0 --port \"$MODELYARD_REGISTRY_PORT\""]

FROM service AS deployer
# Uploaded artifacts live here; mount a volume to keep them.
ENV MODELYARD_DEPLOYER_PORT=8002 \
    MODELYARD_DEPLOYER_ARTIFACT_DIR=/var/lib/modelyard-deployer/artifacts
RUN mkdir -p /var/lib/modelyard-deployer/artifacts \
 && chown -R modelyard:modelyard /var/lib/modelyard-deployer
VOLUME /var/lib/modelyard-deployer
EXPOSE 8002
HEALTHCHECK --interval=3s --timeout=3s --retries=5 --start-period=60s \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['MODELYARD_DEPLOYER_PORT'], timeout=3)"]
CMD ["sh", "-c", "modelyard-deployer migrate && exec modelyard-deployer serve --host 0.0.0.0 --port \"$MODELYARD_DEPLOYER_PORT\""]

FROM service AS gateway
ENV MODELYARD_GATEWAY_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=3s --timeout=3s --retries=5 --start-period=60s \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['MODELYARD_GATEWAY_PORT'], timeout=3)"]
CMD ["sh", "-c", "modelyard-gateway migrate && exec modelyard-gateway serve --host 0.0.0.0 --port \"$MODELYARD_GATEWAY_PORT\""]

FROM service AS device-agent
# The agent has no database, so no migrate step. It drives the Docker Engine through the socket
# mounted at run time (the container needs the socket's group, see deploy/compose.yaml); its
# desired state lives in MODELYARD_AGENT_DATA_DIR. 0.0.0.0 so the local API answers through a
# published port; on a device (host network) set MODELYARD_AGENT_HOST=127.0.0.1.
ENV MODELYARD_AGENT_PORT=8003 MODELYARD_AGENT_HOST=0.0.0.0 \
    MODELYARD_AGENT_DATA_DIR=/var/lib/modelyard-agent
RUN mkdir -p /var/lib/modelyard-agent && chown modelyard:modelyard /var/lib/modelyard-agent
EXPOSE 8003
# Healthy means the process answers (the agent has no database to wait for).
HEALTHCHECK --interval=3s --timeout=3s --retries=5 --start-period=60s \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['MODELYARD_AGENT_PORT'], timeout=3)"]
CMD ["sh", "-c", "exec modelyard-agent serve --host \"$MODELYARD_AGENT_HOST\" --port \"$MODELYARD_AGENT_PORT\""]

# The image: the stage SERVICE names.
FROM ${SERVICE}
USER modelyard
