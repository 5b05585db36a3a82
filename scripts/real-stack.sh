#!/usr/bin/env bash
# Sourced by scripts/up.sh when SPROUT_STACK=real: start PostgreSQL (Debian/PGDG binaries, run as the
# unprivileged `postgres` user when we are root), SeaweedFS S3 and an MLflow server (Postgres backend,
# S3 artifacts, MLflow's basic-auth app: every call needs a login), all on 127.0.0.1 with state under
# $HOME_DIR/stack, then export the SPROUT_* settings and MLflow's login (MLFLOW_TRACKING_USERNAME /
# MLFLOW_TRACKING_PASSWORD) that point the API, the Streamlit app and Airflow at them. Secrets are generated
# once into $HOME_DIR/stack/secrets.env (mode 600; a name missing from an older file is added).
STACK=$(realpath -m "$HOME_DIR/stack")
PG_PORT=${SPROUT_PG_PORT:-5433}
S3_PORT=${SPROUT_S3_PORT:-8333}
MLFLOW_PORT=${SPROUT_MLFLOW_PORT:-5000}
mkdir -p "$STACK"

stack_secret() {  # NAME PYTHON-EXPRESSION: appended to secrets.env unless it is there already
  grep -q "^$1=" "$STACK/secrets.env" 2>/dev/null && return
  (umask 077; echo "$1=$("$BIN/python" -c "import secrets; print($2)")" >> "$STACK/secrets.env")
}
stack_secret PG_PASSWORD 'secrets.token_hex(16)'
stack_secret S3_ACCESS_KEY '"sprout" + secrets.token_hex(6)'
stack_secret S3_SECRET_KEY 'secrets.token_hex(20)'
stack_secret SECRET_KEY 'secrets.token_urlsafe(48)'
stack_secret MLFLOW_ADMIN_PASSWORD 'secrets.token_hex(20)'
stack_secret MLFLOW_FLASK_SECRET_KEY 'secrets.token_hex(32)'
chmod 600 "$STACK/secrets.env"
# shellcheck disable=SC1091
. "$STACK/secrets.env"
MLFLOW_ADMIN_USERNAME=admin

pg_bin() {
  for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/local/bin \
           $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; return 1
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

PGBIN=$(pg_bin)
PGDATA=$STACK/pg
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA" "$STACK/pgsock"
  [ "$(id -u)" = 0 ] && chown postgres "$PGDATA" "$STACK/pgsock" && chmod 755 "$STACK"
  as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
fi
if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $STACK/pgsock" >/dev/null
fi
PSQL=$PGBIN/psql; [ -x "$PSQL" ] || PSQL=$(command -v psql)
psql_admin() { as_pg "$PSQL" -h "$STACK/pgsock" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='sprout'")" ]; then
  psql_admin -c "CREATE ROLE sprout LOGIN PASSWORD '$PG_PASSWORD'"
fi
for db in sprout mlflow airflow; do
  [ -n "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='$db'")" ] || psql_admin -c "CREATE DATABASE $db OWNER sprout"
done
PG_URL_BASE="postgresql+psycopg2://sprout:$PG_PASSWORD@127.0.0.1:$PG_PORT"

mkdir -p "$STACK/weed"
AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY start seaweedfs "$BIN/weed" \
  -logdir="$STACK/weed" mini -dir="$STACK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$S3_PORT" \
  -master.telemetry=false -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0
for _ in $(seq 60); do
  "$BIN/python" - "$S3_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" <<'PY' 2>/dev/null && break
import sys
from minio import Minio
client = Minio(f"127.0.0.1:{sys.argv[1]}", access_key=sys.argv[2], secret_key=sys.argv[3], secure=False)
for bucket in ("sprout", "mlflow"):
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
PY
  sleep 1
done

# MLflow's basic-auth app needs Flask-WTF (the `auth` extra), which the core install does not bring.
if ! "$BIN/python" -c 'import flask_wtf' 2>/dev/null; then
  echo "Installing MLflow's auth extra (Flask-WTF) into $BIN/.. ..."
  "$BIN/pip" install --quiet "mlflow[auth]==$("$BIN/python" -c 'import mlflow; print(mlflow.__version__)')"
fi
# Its users live in the mlflow database (tables of their own); the admin is created on the first start.
MLFLOW_BACKEND_STORE_URI=$PG_URL_BASE/mlflow MLFLOW_AUTH_CONFIG_PATH=$STACK/mlflow-auth/basic_auth.ini \
  MLFLOW_AUTH_ADMIN_USERNAME=$MLFLOW_ADMIN_USERNAME MLFLOW_AUTH_ADMIN_PASSWORD=$MLFLOW_ADMIN_PASSWORD \
  MLFLOW_FLASK_SERVER_SECRET_KEY=$MLFLOW_FLASK_SECRET_KEY \
  MLFLOW_S3_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY \
  AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_DEFAULT_REGION=us-east-1 \
  start mlflow docker/mlflow-basic-auth.sh "$BIN/mlflow" server --app-name basic-auth \
  --artifacts-destination s3://mlflow/mlartifacts \
  --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
  --allowed-hosts "127.0.0.1:$MLFLOW_PORT,localhost:$MLFLOW_PORT"
for _ in $(seq 90); do curl -fsS "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null 2>&1 && break; sleep 1; done
# /health is the one route without a login: check that the login works and that anonymous calls are refused.
mlflow_api=http://127.0.0.1:$MLFLOW_PORT/api/2.0/mlflow/registered-models/search?max_results=1
curl -fsS -u "$MLFLOW_ADMIN_USERNAME:$MLFLOW_ADMIN_PASSWORD" "$mlflow_api" >/dev/null \
  || { echo "MLflow refuses its admin login; see $RUN/mlflow.log" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$mlflow_api")" = 401 ] \
  || { echo "MLflow answers without a login; see $RUN/mlflow.log" >&2; exit 1; }

export SPROUT_DATABASE_URL=$PG_URL_BASE/sprout
export SPROUT_S3_ENDPOINT=127.0.0.1:$S3_PORT SPROUT_S3_ACCESS_KEY=$S3_ACCESS_KEY SPROUT_S3_SECRET_KEY=$S3_SECRET_KEY
export SPROUT_S3_BUCKET=sprout SPROUT_MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT SPROUT_SECRET_KEY=$SECRET_KEY
export MLFLOW_TRACKING_USERNAME=$MLFLOW_ADMIN_USERNAME MLFLOW_TRACKING_PASSWORD=$MLFLOW_ADMIN_PASSWORD
AIRFLOW_DB_URL=$PG_URL_BASE/airflow
STACK_INFO="  PostgreSQL      127.0.0.1:$PG_PORT (databases sprout, mlflow, airflow; user sprout)
  SeaweedFS S3    http://127.0.0.1:$S3_PORT (buckets sprout, mlflow)
  MLflow          http://127.0.0.1:$MLFLOW_PORT (user $MLFLOW_ADMIN_USERNAME, password MLFLOW_ADMIN_PASSWORD of the secrets)
  secrets         $STACK/secrets.env"
