# syntax=docker/dockerfile:1
# Sprout's Streamlit app. It talks only to the API (SPROUT_API_URL), so it needs no secrets, no torch and none of
# the domain's dependencies: the `ui` extra (Streamlit, httpx, pydantic-settings) only.
#   docker build -f docker/streamlit.Dockerfile -t sprout-streamlit .   (context: the repository root)
#   docker run -p 8501:8501 -e SPROUT_API_URL=http://api:8000 sprout-streamlit
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY db/ db/
COPY api/ api/
COPY streamlit_app/ streamlit_app/
RUN /opt/venv/bin/pip install --no-cache-dir ".[ui]" \
    && /opt/venv/bin/python -c "import importlib.util as u, sys; sys.exit([m for m in ('torch', 'onnxruntime', 'sqlalchemy', 'fastapi') if u.find_spec(m)])" \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="sprout-streamlit" \
      org.opencontainers.image.description="Sprout web UI (Streamlit)"
RUN groupadd --system --gid 10001 sprout \
    && useradd --system --uid 10001 --gid sprout --home-dir /home/sprout --create-home --shell /usr/sbin/nologin sprout
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY streamlit_app/ streamlit_app/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    SPROUT_API_URL=http://api:8000
USER 10001:10001
EXPOSE 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "streamlit_app/server.py", "--server.port", "8501", "--server.address", "0.0.0.0"]
