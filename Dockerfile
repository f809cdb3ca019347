# cr-agent as a container: `agent run` against the host's Docker engine (/var/run/docker.sock).
#   scripts/build-image.sh          builds cr-agent:dev (makes the base image locally when it cannot be pulled)
#   docker build -t cr-agent .      on a machine that can pull debian:bookworm-slim and reach PyPI
# Run it as in packaging/compose.yaml: the socket, /etc/cr-agent (config, env), a state volume,
# network_mode: host (so 127.0.0.1 health probes reach the host), a stop timeout above the longest health gate.
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*

# build/wheels holds wheels built on the host by scripts/build-image.sh (installed with --no-index);
# without them pip builds from the source and PyPI.
COPY pyproject.toml README.md /src/
COPY agent /src/agent
COPY pyproject.toml build/wheel[s] /src/wheels/
RUN python3 -m venv /opt/cr-agent \
 && if ls /src/wheels/*.whl >/dev/null 2>&1; then \
      /opt/cr-agent/bin/pip install --no-cache-dir --no-index --find-links /src/wheels cr-agent; \
    else \
      /opt/cr-agent/bin/pip install --no-cache-dir /src; \
    fi \
 && ln -s /opt/cr-agent/bin/agent /usr/local/bin/agent \
 && rm -rf /src \
 && agent --version

VOLUME ["/var/lib/cr-agent"]
ENV PYTHONUNBUFFERED=1
STOPSIGNAL SIGTERM
ENTRYPOINT ["agent"]
CMD ["run", "-c", "/etc/cr-agent/agent.toml"]
