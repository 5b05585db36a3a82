#!/usr/bin/env bash
# Sourced by scripts/up.sh (both stacks): MLflow with a login, as docker compose and the chart run it. The server
# is MLflow's basic-auth app plus Sprout's artifact-location check (`--app-name sprout-basic-auth`,
# model/runtime/mlflow_app.py), on 127.0.0.1 only; every call but /health needs a login. The admin's password and
# the auth app's CSRF key are generated once into secrets files (mode 600), never taken from defaults.
#   secret FILE NAME PYTHON-EXPRESSION   append NAME=<value> to FILE unless the name is there already
#   start_mlflow AUTH_DIR BACKEND_URI ARTIFACTS_DESTINATION [ENV=VALUE...]
#                                        start the server (users in AUTH_DIR/users.db unless
#                                        MLFLOW_AUTH_DATABASE_URI says otherwise) on a port nobody else holds
#                                        (scripts/ports.sh), wait for it, make sure the listener is that server,
#                                        then check that the admin's login works and that an anonymous call is
#                                        refused (401)
#   mlflow_login_works URL               the admin's login answers 200 at URL (its header goes to curl on stdin,
#                                        never on a command line that `ps` shows every account)
# They read MLFLOW_ADMIN_USERNAME / MLFLOW_ADMIN_PASSWORD / MLFLOW_FLASK_SECRET_KEY, $BIN, $RUN, $MLFLOW_PORT and
# up.sh's `start`.

secret() {
  grep -q "^$2=" "$1" 2>/dev/null && return
  (umask 077; echo "$2=$("$BIN/python" -c "import secrets; print($3)")" >> "$1")
  chmod 600 "$1"
}

mlflow_login_works() {  # the header on curl's stdin (`-H @-`): no quoting of the password to get wrong
  printf 'Authorization: Basic %s\n' "$(printf '%s:%s' "$MLFLOW_ADMIN_USERNAME" "$MLFLOW_ADMIN_PASSWORD" \
    | base64 -w0)" | curl -fsS -H @- "$1" >/dev/null
}

start_mlflow() {
  local auth_dir=$1 backend=$2 destination=$3; shift 3
  # The basic-auth app needs Flask-WTF (MLflow's `auth` extra); a venv made before it was in `stack` lacks it.
  if ! "$BIN/python" -c 'import flask_wtf' 2>/dev/null; then
    echo "Installing MLflow's auth extra (Flask-WTF) into $BIN/.. ..."
    "$BIN/pip" install --quiet "mlflow[auth]==$("$BIN/python" -c 'import mlflow; print(mlflow.__version__)')"
  fi
  mkdir -p "$auth_dir" && chmod 700 "$auth_dir"
  claim_port mlflow "$MLFLOW_PORT"
  (
  [ $# -gt 0 ] && export "$@"  # the server's own environment (its S3 keys), not the rest of the stack's
  # The store's URL (its password) goes by the environment, never on a command line that `ps` shows.
  MLFLOW_BACKEND_STORE_URI="$backend" \
    MLFLOW_AUTH_DATABASE_URI="${MLFLOW_AUTH_DATABASE_URI:-sqlite:///$auth_dir/users.db}" \
    MLFLOW_AUTH_CONFIG_PATH="$auth_dir/basic_auth.ini" \
    MLFLOW_AUTH_ADMIN_USERNAME="$MLFLOW_ADMIN_USERNAME" MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_ADMIN_PASSWORD" \
    MLFLOW_FLASK_SERVER_SECRET_KEY="$MLFLOW_FLASK_SECRET_KEY" \
    start mlflow docker/mlflow-basic-auth.sh "$BIN/mlflow" server --app-name sprout-basic-auth \
    --artifacts-destination "$destination" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
    --allowed-hosts "127.0.0.1:$MLFLOW_PORT"  # not localhost: it may lead to ::1, where anyone may listen
  )
  for _ in $(seq 90); do curl -fsS "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null 2>&1 && break; sleep 1; done
  check_port mlflow "$MLFLOW_PORT"  # before the admin's password goes to whatever answers there
  local api=http://127.0.0.1:$MLFLOW_PORT/api/2.0/mlflow/registered-models/search?max_results=1
  mlflow_login_works "$api" \
    || { echo "MLflow refuses its admin login; see $RUN/mlflow.log" >&2; exit 1; }
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$api")" = 401 ] \
    || { echo "MLflow answers without a login; see $RUN/mlflow.log" >&2; exit 1; }
}
