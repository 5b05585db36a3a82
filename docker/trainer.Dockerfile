# syntax=docker/dockerfile:1
# Sprout trainer: the `sprout` CLI with torch and the backbones' offline weights (the `train` extra).
# Airflow's KubernetesPodOperator runs it as `sh -c "sprout --json ... > /airflow/xcom/return.json"`,
# docker compose as `docker compose run --rm trainer sprout ...`.
#   docker build -f docker/trainer.Dockerfile -t sprout-trainer .                              (CPU torch)
#   docker build -f docker/trainer.Dockerfile --build-arg TORCH_VARIANT=cuda -t sprout-trainer:cuda .
# TORCH_VARIANT=cpu installs torch from the PyTorch CPU wheel index (no CUDA libraries, much smaller);
# cuda installs PyPI's default torch wheel (torch 2.14.1 is +cu130 there), which brings the CUDA 13 runtime as
# nvidia-* wheels (~3 GB): the host needs only an NVIDIA driver for CUDA 13 (>= 580) and, for containers, the
# NVIDIA container toolkit or device plugin (no CUDA base image needed).
ARG TORCH_VARIANT=cpu

FROM python:3.11.14-slim-bookworm AS build
ARG TORCH_VARIANT
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY db/ db/
COPY api/ api/
COPY streamlit_app/ streamlit_app/
RUN case "$TORCH_VARIANT" in \
      cpu) export PIP_EXTRA_INDEX_URL="$TORCH_CPU_INDEX" ;; \
      cuda) ;; \
      *) echo "TORCH_VARIANT must be cpu or cuda, not $TORCH_VARIANT" >&2; exit 2 ;; \
    esac \
    && /opt/venv/bin/pip install --no-cache-dir ".[train]" \
    && /opt/venv/bin/python -c "import torch, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

FROM python:3.11.14-slim-bookworm
ARG TORCH_VARIANT
LABEL org.opencontainers.image.title="sprout-trainer" \
      org.opencontainers.image.description="Sprout CLI with torch (${TORCH_VARIANT})"
RUN groupadd --system --gid 10001 sprout \
    && useradd --system --uid 10001 --gid sprout --home-dir /var/lib/sprout --create-home --shell /usr/sbin/nologin sprout \
    && mkdir -p /airflow/xcom && chown -R 10001:10001 /airflow
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SPROUT_HOME=/var/lib/sprout \
    SPROUT_DEVICE=auto \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /var/lib/sprout
USER 10001:10001
# A batch image: "healthy" means the CLI and its training stack import (checked rarely).
HEALTHCHECK --interval=5m --timeout=60s --start-period=10s --retries=1 \
    CMD ["python", "-c", "import torch, onnxruntime, model.cli"]
CMD ["sprout", "--help"]
