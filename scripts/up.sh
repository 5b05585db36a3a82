#!/usr/bin/env bash
# `make up`: run Sprout on one machine without Docker (embedded default: SQLite, local store, local MLflow).
# Imports and trains a first model when there is none, creates a reviewer and an admin with generated passwords,
# starts the API and the Streamlit app on loopback in the background, prints URLs and credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOME_DIR=${SPROUT_HOME:-.sprout}
RUN=$HOME_DIR/run
API_PORT=${SPROUT_API_PORT:-8000}
UI_PORT=${SPROUT_UI_PORT:-8501}
SEED=${SPROUT_SEED_DATASET:-../shared/datasets/dandelion-grass}
mkdir -p "$RUN" && chmod 700 "$HOME_DIR"  # the owner's alone from the start (sprout keeps it so)
export SPROUT_HOME=$HOME_DIR
STACK_MODE=${SPROUT_STACK:-embedded}
MLFLOW_PORT=${SPROUT_MLFLOW_PORT:-5000}
AIRFLOW_PORT=${SPROUT_AIRFLOW_PORT:-8080}

start() {  # name, command...
  local name=$1; shift
  if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$RUN/$name.pid"))"; return
  fi
  setsid nohup "$@" > "$RUN/$name.log" 2>&1 < /dev/null &  # own process group: `make down` stops it whole
  echo $! > "$RUN/$name.pid"
}

# Ports: only free ones, or our own services' (scripts/ports.sh). MLflow with a login on both stacks
# (scripts/mlflow-auth.sh): the admin's password and the CSRF key are generated once into
# $HOME_DIR/mlflow-auth/secrets.env (the real stack keeps them with its other secrets).
# shellcheck source=scripts/ports.sh
. scripts/ports.sh
# shellcheck source=scripts/mlflow-auth.sh
. scripts/mlflow-auth.sh
# A start that fails part-way stops everything it started: nothing is left running, talking to whatever took a port.
trap 'status=$?; [ "$status" -eq 0 ] || { echo "make up failed: stopping what it started" >&2; scripts/down.sh >/dev/null 2>&1; }' EXIT
for service_port in "api $API_PORT" "streamlit $UI_PORT" "airflow $AIRFLOW_PORT"; do
  # shellcheck disable=SC2086
  claim_port $service_port
done
MLFLOW_ADMIN_USERNAME=admin
STACK_INFO=""
if [ "$STACK_MODE" = real ]; then
  echo "Starting the real stack: PostgreSQL, SeaweedFS S3, MLflow server..."
  # shellcheck source=scripts/real-stack.sh
  . scripts/real-stack.sh
elif [ "$STACK_MODE" != embedded ]; then
  echo "SPROUT_STACK must be 'embedded' (default) or 'real', not '$STACK_MODE'" >&2; exit 2
else
  # Sprout's own processes open the SQLite store and the artifacts directly (mode 700 $HOME_DIR); the server is
  # the UI and REST API over them, for the logged-in operator only, its uploads kept inside the state directory.
  MLFLOW_AUTH_DIR=$(realpath -m "$HOME_DIR/mlflow-auth")
  mkdir -p "$MLFLOW_AUTH_DIR" && chmod 700 "$MLFLOW_AUTH_DIR"
  secret "$MLFLOW_AUTH_DIR/secrets.env" MLFLOW_ADMIN_PASSWORD 'secrets.token_hex(20)'
  secret "$MLFLOW_AUTH_DIR/secrets.env" MLFLOW_FLASK_SECRET_KEY 'secrets.token_hex(32)'
  # shellcheck disable=SC1091
  . "$MLFLOW_AUTH_DIR/secrets.env"
  start_mlflow "$MLFLOW_AUTH_DIR" "sqlite:///$(realpath -m "$HOME_DIR")/mlflow.db" \
    "$(realpath -m "$HOME_DIR")/mlartifacts"
  STACK_INFO="  MLflow UI       http://127.0.0.1:$MLFLOW_PORT   (user $MLFLOW_ADMIN_USERNAME, password in the credentials below)"
fi

"$BIN/sprout" db upgrade >/dev/null
if ! "$BIN/sprout" --json status 2>/dev/null | grep -q '"champion": {'; then
  if [ -d "$SEED" ]; then
    echo "No model yet: importing $SEED and training a first one (about a minute)..."
    "$BIN/sprout" bootstrap "$SEED"
  else
    echo "No model yet and no seed data set at $SEED: /predict answers 503 until a model is trained."
  fi
fi

CREDS=$HOME_DIR/credentials.txt
if [ ! -f "$CREDS" ]; then
  PASSWORD=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(12))')
  ADMIN_PASSWORD=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(12))')
  if echo "$PASSWORD" | "$BIN/sprout" users add reviewer >/dev/null 2>&1 \
     && echo "$ADMIN_PASSWORD" | "$BIN/sprout" users add admin --admin >/dev/null 2>&1; then
    umask 077
    printf 'reviewer user: reviewer\nreviewer password: %s\nadmin user: admin\nadmin password: %s\n' \
      "$PASSWORD" "$ADMIN_PASSWORD" > "$CREDS"
  fi
fi

# Airflow (its own venv): api-server + scheduler + dag-processor + triggerer (scripts/airflow.sh), DAGs from dags/.
export AIRFLOW_HOME=$(realpath -m "$HOME_DIR/airflow")
mkdir -p "$AIRFLOW_HOME"
AIRFLOW_PASSWORDS=$AIRFLOW_HOME/passwords.json
# Two users, generated passwords (a file from before `sprout` existed gets it added): `admin`, the operator's, and
# `sprout`, the API's: a viewer that Sprout's auth manager (airflow_plugins/sprout_auth_manager.py) also lets
# start Sprout's DAGs and announce approvals (an asset event), nothing else.
(umask 077; "$BIN/python" - "$AIRFLOW_PASSWORDS" <<'PY'
import json, pathlib, secrets, sys
path = pathlib.Path(sys.argv[1])
users = json.loads(path.read_text()) if path.exists() else {}
missing = {name: secrets.token_urlsafe(12) for name in ("admin", "sprout") if name not in users}
if missing:
    path.write_text(json.dumps(users | missing))
PY
)
airflow_password() {  # USER
  "$BIN/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$AIRFLOW_PASSWORDS" "$1"
}
AIRFLOW_PASSWORD=$(airflow_password admin)
AIRFLOW_API_PASSWORD=$(airflow_password sprout)
export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False  # the weekly retrain is the point: run it
export AIRFLOW__CORE__PLUGINS_FOLDER=$PWD/airflow_plugins AIRFLOW__CORE__AUTH_MANAGER=sprout_auth_manager.SproutAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin,sprout:viewer AIRFLOW__SPROUT__TRIGGER_USERS=sprout
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$AIRFLOW_PASSWORDS
export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$AIRFLOW_PORT
export AIRFLOW__API__BASE_URL=http://127.0.0.1:$AIRFLOW_PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$AIRFLOW_PORT/execution/
[ -n "${AIRFLOW_DB_URL:-}" ] && export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$AIRFLOW_DB_URL
export SPROUT_CLI=$PWD/$BIN/sprout
PATH=$PWD/.venv-airflow/bin:$PATH start airflow scripts/airflow.sh  # it runs `airflow ...` children
# For the API (after Airflow's start: its tasks need no Airflow login).
export SPROUT_AIRFLOW_URL=http://127.0.0.1:$AIRFLOW_PORT SPROUT_AIRFLOW_USERNAME=sprout SPROUT_AIRFLOW_PASSWORD=$AIRFLOW_API_PASSWORD

# With an MLflow server (the real stack) the API logs in as itself: serving's grants only, not the admin's.
( [ -n "${API_MLFLOW_PASSWORD:-}" ] && export MLFLOW_TRACKING_USERNAME=$API_MLFLOW_USERNAME \
    MLFLOW_TRACKING_PASSWORD=$API_MLFLOW_PASSWORD
  # --no-proxy-headers: uvicorn would believe X-Forwarded-For from 127.0.0.1, i.e. from any local user (the API
  # reads forwarded addresses itself, from SPROUT_TRUSTED_PROXIES only)
  start api "$BIN/uvicorn" api.main:app --host 127.0.0.1 --port "$API_PORT" --no-proxy-headers )
# Streamlit accepts the uploads the API accepts (whole MB, rounded up).
STREAMLIT_SERVER_MAX_UPLOAD_SIZE=$("$BIN/python" -c 'import math; from model.core.settings import Settings; print(math.ceil(Settings().max_upload_mb))') \
SPROUT_API_URL=http://127.0.0.1:$API_PORT start streamlit "$BIN/streamlit" run streamlit_app/server.py \
  --server.headless true --server.address 127.0.0.1 --server.port "$UI_PORT" --browser.gatherUsageStats false

for _ in $(seq 120); do
  if curl -fsS "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 \
     && curl -fsS "http://127.0.0.1:$UI_PORT/_stcore/health" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fsS "http://127.0.0.1:$API_PORT/healthz" >/dev/null || { echo "API failed to start; see $RUN/api.log"; exit 1; }
echo "Waiting for Airflow (first start migrates its database: a minute or two)..."
for _ in $(seq 300); do
  curl -fsS "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null 2>&1 && break
  kill -0 "$(cat "$RUN/airflow.pid")" 2>/dev/null || { echo "Airflow exited; see $RUN/airflow.log"; exit 1; }
  sleep 1
done
# What answered is what this script started (not another account's server on a port taken in between).
check_port airflow "$AIRFLOW_PORT"; check_port api "$API_PORT"; check_port streamlit "$UI_PORT"

cat <<INFO

Sprout is up ($STACK_MODE stack; state in $HOME_DIR; logs in $RUN; stop with: make down)
  Streamlit app   http://127.0.0.1:$UI_PORT
  API             http://127.0.0.1:$API_PORT   (docs: /docs, metrics: /metrics)
  try it          curl -F file=@some.jpg http://127.0.0.1:$API_PORT/predict
  Airflow         http://127.0.0.1:$AIRFLOW_PORT   (user admin, password $AIRFLOW_PASSWORD; DAGs sprout_retrain, sprout_bootstrap)
$STACK_INFO
INFO
grep -q '^airflow' "$CREDS" 2>/dev/null || (umask 077; printf 'airflow user: admin\nairflow password: %s\n' \
  "$AIRFLOW_PASSWORD" >> "$CREDS")
grep -q '^mlflow' "$CREDS" 2>/dev/null || (umask 077; printf 'mlflow user: %s\nmlflow password: %s\n' \
  "$MLFLOW_ADMIN_USERNAME" "$MLFLOW_ADMIN_PASSWORD" >> "$CREDS")
sed 's/^/  /' "$CREDS"
echo "  (credentials are also in $CREDS)"
