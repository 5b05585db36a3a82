#!/bin/sh
# Runs its arguments, `mlflow server --app-name basic-auth ...`, with MLflow's basic-auth configuration written
# from the environment first, so that no password sits in the image, a ConfigMap or a command line
# (docker compose `mlflow`, the Helm chart's MLflow Deployment, both from the sprout-api image):
#   mlflow-basic-auth mlflow server --app-name basic-auth --artifacts-destination s3://mlflow/mlartifacts ...
#
#   MLFLOW_AUTH_DATABASE_URI        the user store (an SQLAlchemy URL). Default: MLFLOW_BACKEND_STORE_URI, i.e. the
#                                   users and permissions tables go into MLflow's own PostgreSQL database (with
#                                   their own alembic_version_auth table), not into a SQLite file in the cwd.
#   MLFLOW_AUTH_ADMIN_USERNAME      the admin created on the first start (default: admin)
#   MLFLOW_AUTH_ADMIN_PASSWORD      its password, at least 12 characters (required; MLflow itself reads it, and
#                                   only while that user does not exist yet)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  the auth app's CSRF key (required; the same in every replica)
#   MLFLOW_AUTH_DEFAULT_PERMISSION  what a logged-in user may do where nothing else is granted (default:
#                                   NO_PERMISSIONS: the API's login gets grants of its own, `sprout mlflow
#                                   serving-login`, and no more)
#   MLFLOW_AUTH_CONFIG_PATH         where the file goes (default: /tmp/mlflow-auth/basic_auth.ini), mode 600
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION  MLflow's background job workers (GenAI evaluation jobs; Sprout runs none):
#                                   default false here, which halves an idle server's memory (about 1 GB less)
#   MLFLOW_DISABLE_TELEMETRY        default true here: no usage reports to MLflow's makers
set -eu
fail() { echo "mlflow-basic-auth: $*" >&2; exit 2; }

database=${MLFLOW_AUTH_DATABASE_URI:-${MLFLOW_BACKEND_STORE_URI:-}}
[ -n "$database" ] || fail "set MLFLOW_AUTH_DATABASE_URI (or MLFLOW_BACKEND_STORE_URI): the user store"
[ -n "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ] || fail "set MLFLOW_AUTH_ADMIN_PASSWORD (the admin's password)"
[ -n "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ] || fail "set MLFLOW_FLASK_SERVER_SECRET_KEY (the CSRF key)"
[ $# -gt 0 ] || fail "usage: mlflow-basic-auth mlflow server --app-name basic-auth [OPTIONS]"
export MLFLOW_AUTH_ADMIN_USERNAME="${MLFLOW_AUTH_ADMIN_USERNAME:-admin}"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
permission=${MLFLOW_AUTH_DEFAULT_PERMISSION:-NO_PERMISSIONS}
case "$permission" in READ|EDIT|MANAGE|NO_PERMISSIONS) ;; *) fail "unknown default permission $permission" ;; esac
case "$database" in *"
"*) fail "the user store URL has a line break" ;; esac

export MLFLOW_AUTH_CONFIG_PATH="${MLFLOW_AUTH_CONFIG_PATH:-/tmp/mlflow-auth/basic_auth.ini}"
umask 077
mkdir -p "$(dirname "$MLFLOW_AUTH_CONFIG_PATH")"
# configparser interpolates `%`: a URL-encoded password (%40...) is written as %%40.
printf '[mlflow]\ndefault_permission = %s\ndatabase_uri = %s\nadmin_username = %s\n%s\n' \
  "$permission" "$(printf '%s' "$database" | sed 's/%/%%/g')" "$MLFLOW_AUTH_ADMIN_USERNAME" \
  "authorization_function = mlflow.server.auth:authenticate_request_basic_auth" > "$MLFLOW_AUTH_CONFIG_PATH"
exec "$@"
