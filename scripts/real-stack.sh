#!/usr/bin/env bash
# Sourced by scripts/up.sh when SPROUT_STACK=real: start PostgreSQL (Debian/PGDG binaries, run as the
# unprivileged `postgres` user when we are root), SeaweedFS S3 and an MLflow server (Postgres backend,
# S3 artifacts, MLflow's basic-auth app: every call needs a login), all on 127.0.0.1 with state under
# $HOME_DIR/stack, then export the SPROUT_* settings and MLflow's admin login (MLFLOW_TRACKING_USERNAME /
# MLFLOW_TRACKING_PASSWORD) that point the trainer, the Streamlit app and Airflow at them; the API gets a login of
# its own (API_MLFLOW_USERNAME / API_MLFLOW_PASSWORD, `sprout mlflow serving-login`). Secrets are generated
# once into $HOME_DIR/stack/secrets.env (mode 600; a name missing from an older file is added).
STACK=$(realpath -m "$HOME_DIR/stack")
PG_PORT=${SPROUT_PG_PORT:-5433}
S3_PORT=${SPROUT_S3_PORT:-8333}
MLFLOW_PORT=${SPROUT_MLFLOW_PORT:-5000}
mkdir -p "$STACK"

stack_secret() { secret "$STACK/secrets.env" "$@"; }  # NAME PYTHON-EXPRESSION (scripts/mlflow-auth.sh)
stack_secret PG_PASSWORD 'secrets.token_hex(16)'
stack_secret S3_ACCESS_KEY '"sprout" + secrets.token_hex(6)'
stack_secret S3_SECRET_KEY 'secrets.token_hex(20)'
stack_secret SECRET_KEY 'secrets.token_urlsafe(48)'
stack_secret MLFLOW_ADMIN_PASSWORD 'secrets.token_hex(20)'
stack_secret MLFLOW_FLASK_SECRET_KEY 'secrets.token_hex(32)'
stack_secret MLFLOW_API_PASSWORD 'secrets.token_hex(20)'
# shellcheck disable=SC1091
. "$STACK/secrets.env"

pg_bin() {
  for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/local/bin \
           $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; return 1
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

PGBIN=$(pg_bin)
PGDATA=$STACK/pg PGSOCK=$STACK/pgsock
if [ "$(id -u)" = 0 ] && [ ! -f "$PGDATA/PG_VERSION" ]; then
  # As root, PostgreSQL runs as `postgres`, which may not enter the owner-only state directory (mode 700): its
  # cluster and socket live in a directory of postgres's own, mode 700 (the socket trusts whoever reaches it).
  PGROOT=/var/lib/sprout-postgresql/$(printf '%s' "$STACK" | sha256sum | cut -c1-16)
  PGDATA=$PGROOT/pg PGSOCK=$PGROOT/sock
  mkdir -p "$PGROOT" && chown postgres "$PGROOT" && chmod 700 "$PGROOT"
fi
printf '%s\n' "$PGDATA" > "$STACK/pgdata"  # where `make down` finds the cluster
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  as_pg mkdir -p "$PGDATA" "$PGSOCK"
  as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
fi
if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PGSOCK" >/dev/null
fi
PSQL=$PGBIN/psql; [ -x "$PSQL" ] || PSQL=$(command -v psql)
psql_admin() { as_pg "$PSQL" -h "$PGSOCK" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='sprout'")" ]; then
  # on stdin: a password in psql's arguments would show in `ps` to every account
  printf "CREATE ROLE sprout LOGIN PASSWORD '%s'\n" "$PG_PASSWORD" | psql_admin
fi
for db in sprout mlflow airflow; do
  [ -n "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='$db'")" ] || psql_admin -c "CREATE DATABASE $db OWNER sprout"
done
PG_URL_BASE="postgresql+psycopg2://sprout:$PG_PASSWORD@127.0.0.1:$PG_PORT"

mkdir -p "$STACK/weed"
claim_port seaweedfs "$S3_PORT"  # scripts/ports.sh: another account's S3 there would become Sprout's store
AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY start seaweedfs "$BIN/weed" \
  -logdir="$STACK/weed" mini -dir="$STACK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$S3_PORT" \
  -master.telemetry=false -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0
for _ in $(seq 60); do owns_port "$(cat "$RUN/seaweedfs.pid")" "$S3_PORT" && break; sleep 1; done
check_port seaweedfs "$S3_PORT"
buckets_made=false
for _ in $(seq 60); do
  # the keys by environment, never as arguments (`ps` shows those to every account)
  if S3_KEY=$S3_ACCESS_KEY S3_SECRET=$S3_SECRET_KEY "$BIN/python" - "$S3_PORT" <<'PY' 2>/dev/null
import os
import sys
from minio import Minio
client = Minio(f"127.0.0.1:{sys.argv[1]}", access_key=os.environ["S3_KEY"], secret_key=os.environ["S3_SECRET"],
               secure=False)
for bucket in ("sprout", "mlflow"):
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
PY
  then buckets_made=true; break; fi
  sleep 1
done
[ "$buckets_made" = true ] || { echo "SeaweedFS S3 did not answer; see $RUN/seaweedfs.log and $STACK/weed" >&2; exit 1; }

# Users live in the mlflow database (tables of their own); the admin is created on the first start.
start_mlflow "$STACK/mlflow-auth" "$PG_URL_BASE/mlflow" s3://mlflow/mlartifacts \
  MLFLOW_AUTH_DATABASE_URI="$PG_URL_BASE/mlflow" MLFLOW_S3_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" \
  AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_DEFAULT_REGION=us-east-1

export SPROUT_DATABASE_URL=$PG_URL_BASE/sprout
export SPROUT_S3_ENDPOINT=127.0.0.1:$S3_PORT SPROUT_S3_ACCESS_KEY=$S3_ACCESS_KEY SPROUT_S3_SECRET_KEY=$S3_SECRET_KEY
export SPROUT_S3_BUCKET=sprout SPROUT_MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT SPROUT_SECRET_KEY=$SECRET_KEY
export MLFLOW_TRACKING_USERNAME=$MLFLOW_ADMIN_USERNAME MLFLOW_TRACKING_PASSWORD=$MLFLOW_ADMIN_PASSWORD
AIRFLOW_DB_URL=$PG_URL_BASE/airflow
# The API's own MLflow login (up.sh starts the API with it): READ on the training runs, EDIT on the model.
API_MLFLOW_USERNAME=sprout-api API_MLFLOW_PASSWORD=$MLFLOW_API_PASSWORD
printf '%s\n' "$API_MLFLOW_PASSWORD" | "$BIN/sprout" mlflow serving-login "$API_MLFLOW_USERNAME" >/dev/null
STACK_INFO="  PostgreSQL      127.0.0.1:$PG_PORT (databases sprout, mlflow, airflow; user sprout)
  SeaweedFS S3    http://127.0.0.1:$S3_PORT (buckets sprout, mlflow)
  MLflow          http://127.0.0.1:$MLFLOW_PORT (user $MLFLOW_ADMIN_USERNAME, password MLFLOW_ADMIN_PASSWORD of the secrets)
  secrets         $STACK/secrets.env"
