# syntax=docker/dockerfile:1
# MLflow tracking server and model registry for Sprout: mlflow with its basic-auth app (Flask-WTF), the
# PostgreSQL driver and boto3 for S3 artifacts, and Sprout's package without its dependencies for one module:
# the `sprout-basic-auth` app (model/runtime/mlflow_app.py: basic-auth that also keeps experiments' artifacts
# inside the artifact destination). Started through docker/mlflow-basic-auth.sh, which writes the auth
# configuration from the environment (no default password).
#   docker build -f docker/mlflow.Dockerfile -t sprout-mlflow .          (context: the repository root)
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY db/ db/
COPY api/ api/
COPY streamlit_app/ streamlit_app/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir "mlflow[auth]>=3.17,<4" "psycopg2-binary>=2.9" "boto3>=1.34" \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -c "import flask_wtf, mlflow.server.auth, psycopg2, boto3, model.runtime.mlflow_app" \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="sprout-mlflow" \
      org.opencontainers.image.description="MLflow server (basic auth, PostgreSQL, S3 artifacts) for Sprout"
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /var/lib/mlflow --create-home --shell /usr/sbin/nologin mlflow
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/mlflow-basic-auth.sh /usr/local/bin/mlflow-basic-auth
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/mlflow
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
CMD ["mlflow-basic-auth", "mlflow", "server", "--app-name", "sprout-basic-auth", "--host", "0.0.0.0", "--port", "5000"]
