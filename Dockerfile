# incidentflow: one image for the worker, the HTTP API and the migrate job (docs/deploy.md).
#   docker build -t incidentflow:0.1.0 .
# The default command serves the API; compose runs `incidentflow worker` / `migrate` from it.
# No secrets here: every setting comes from the environment at run time. No policy either:
# mount yours at /etc/incidentflow/policy.yaml (read-only); without one, or with the published
# development credentials of examples/policy.yaml, the worker and API refuse to start.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    INCIDENTFLOW_POLICY=/etc/incidentflow/policy.yaml

# a fixed, unprivileged uid/gid, so mounted files (policy, TLS keys) can be granted to it
RUN groupadd --system --gid 10001 incidentflow \
    && useradd --system --uid 10001 --gid incidentflow --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin incidentflow

WORKDIR /app

# the project's own files; requirements.lock pins every dependency (as constraints)
COPY requirements.lock pyproject.toml README.md ./
COPY schemas ./schemas
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY starter ./starter
COPY launcher ./launcher
RUN pip install --no-cache-dir --constraint requirements.lock . \
    && rm -rf build ./*.egg-info

USER 10001:10001

EXPOSE 8000

# the API's liveness; compose replaces it for the worker (heartbeat file) and the jobs
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# exec form: the process is PID 1 and receives SIGTERM itself (graceful shutdown)
CMD ["incidentflow", "api", "--host", "0.0.0.0", "--port", "8000"]
