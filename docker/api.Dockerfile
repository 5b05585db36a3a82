# syntax=docker/dockerfile:1
# Sprout API: FastAPI + ONNX Runtime, the `api` extra only (no torch, no Streamlit: the build fails if either got
# in). Also the one-shot `sprout-init` job (migrations, the first reviewer). MLflow has its own image
# (docker/mlflow.Dockerfile).
#   docker build -f docker/api.Dockerfile -t sprout-api .          (context: the repository root)
#   docker run -p 8000:8000 --env-file .env sprout-api
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY db/ db/
COPY api/ api/
COPY streamlit_app/ streamlit_app/
RUN /opt/venv/bin/pip install --no-cache-dir ".[api]" \
    && /opt/venv/bin/python -c "import importlib.util as u, sys; sys.exit([m for m in ('torch', 'streamlit') if u.find_spec(m)])" \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="sprout-api" \
      org.opencontainers.image.description="Sprout API (FastAPI + ONNX Runtime, no torch)"
RUN groupadd --system --gid 10001 sprout \
    && useradd --system --uid 10001 --gid sprout --home-dir /var/lib/sprout --create-home --shell /usr/sbin/nologin sprout
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/sprout-init.sh /usr/local/bin/sprout-init
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SPROUT_HOME=/var/lib/sprout
WORKDIR /var/lib/sprout
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# The API reads X-Forwarded-For itself, from the proxies in SPROUT_TRUSTED_PROXIES only (your ingress, the Streamlit
# server); uvicorn's own reading (FORWARDED_ALLOW_IPS) is off so that it cannot rewrite the peer before.
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
