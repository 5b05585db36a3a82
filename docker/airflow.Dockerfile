# syntax=docker/dockerfile:1
# Airflow for Sprout: the official image (same Airflow as the Makefile's .venv-airflow) with the DAGs and
# Sprout's auth manager baked in, and the `sprout` CLI in its own virtualenv (Airflow pins its own FastAPI) for
# the local task runner (SPROUT_TASK_RUNNER=local: tasks run `sprout` beside the scheduler, as in docker compose).
# On Kubernetes (SPROUT_TASK_RUNNER=kubernetes) the tasks run as pods of the trainer image instead, and
# the CLI here is not needed: build with --build-arg SPROUT_LOCAL_RUNNER=false for a much smaller image.
#   docker build -f docker/airflow.Dockerfile -t sprout-airflow .      (context: the repository root)
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11

FROM ${AIRFLOW_IMAGE} AS sprout-cli
ARG SPROUT_LOCAL_RUNNER=true
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
# The official image sets PIP_USER=true, which pip refuses inside a virtualenv.
ENV PIP_USER=false PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# As the image's airflow user (50000): the sources must be writable by it (pip builds in the tree).
COPY --chown=50000:0 pyproject.toml README.md /opt/airflow/sprout-src/
COPY --chown=50000:0 model/ /opt/airflow/sprout-src/model/
COPY --chown=50000:0 db/ /opt/airflow/sprout-src/db/
COPY --chown=50000:0 api/ /opt/airflow/sprout-src/api/
COPY --chown=50000:0 streamlit_app/ /opt/airflow/sprout-src/streamlit_app/
WORKDIR /opt/airflow/sprout-src
# CPU torch: training on a GPU is the trainer image's job (compose profile `gpu`, or a Kubernetes pod).
RUN python -m venv /opt/airflow/sprout-venv \
    && if [ "$SPROUT_LOCAL_RUNNER" = true ]; then \
         PIP_EXTRA_INDEX_URL="$TORCH_CPU_INDEX" /opt/airflow/sprout-venv/bin/pip install --no-cache-dir ".[train]" \
         && /opt/airflow/sprout-venv/bin/sprout --help > /dev/null \
         && find /opt/airflow/sprout-venv -name '__pycache__' -type d -prune -exec rm -rf {} + ; \
       fi

FROM ${AIRFLOW_IMAGE}
LABEL org.opencontainers.image.title="sprout-airflow" \
      org.opencontainers.image.description="Airflow with the Sprout DAGs and the sprout CLI"
COPY --from=sprout-cli --chown=50000:0 /opt/airflow/sprout-venv /opt/airflow/sprout-venv
COPY --chown=50000:0 dags/ /opt/airflow/dags/
# Sprout's auth manager (AIRFLOW__CORE__AUTH_MANAGER=sprout_auth_manager.SproutAuthManager): the plugins folder
# is on every Airflow component's sys.path. Root's and read-only for the airflow user (uid 50000, group 0), whose
# tasks run DAG code: they must not rewrite what decides the API's permissions.
COPY --chmod=0755 airflow_plugins/ /opt/airflow/plugins/
COPY --chmod=0755 docker/airflow-healthcheck.sh /opt/airflow/healthcheck.sh
# Mount points of named volumes, owned by the airflow user (a new volume takes the image's ownership).
RUN mkdir -p /opt/airflow/auth /opt/airflow/sprout-home
ENV SPROUT_CLI=/opt/airflow/sprout-venv/bin/sprout \
    SPROUT_TASK_RUNNER=local \
    SPROUT_HOME=/opt/airflow/sprout-home \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
USER 50000
# Which Airflow component this container runs is read from its command line (see the script).
HEALTHCHECK --interval=30s --timeout=30s --start-period=60s --retries=5 CMD ["/opt/airflow/healthcheck.sh"]
