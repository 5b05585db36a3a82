#!/bin/sh
# One-shot set-up of a Sprout deployment (docker compose `sprout-init`, Helm's init Job): apply the database
# migrations, create the first reviewer (an admin) from SPROUT_REVIEWER_USERNAME / SPROUT_REVIEWER_PASSWORD and,
# with MLflow's admin login, the API's own MLflow login from MLFLOW_API_USERNAME / MLFLOW_API_PASSWORD (serving's
# grants only). Idempotent: an existing reviewer is kept as it is (its password is not changed); the API's MLflow
# password is set to the given one.
set -eu
sprout --json db upgrade
if [ -n "${SPROUT_REVIEWER_USERNAME:-}" ]; then
  : "${SPROUT_REVIEWER_PASSWORD:?SPROUT_REVIEWER_PASSWORD is required with SPROUT_REVIEWER_USERNAME}"
  if answer=$(printf '%s\n' "$SPROUT_REVIEWER_PASSWORD" | sprout --json users add "$SPROUT_REVIEWER_USERNAME" --admin); then
    echo "$answer"
  elif echo "$answer" | grep -q '"ConflictError"'; then
    echo "reviewer $SPROUT_REVIEWER_USERNAME already exists"
  else
    echo "$answer" >&2
    exit 1
  fi
fi
if [ -n "${MLFLOW_API_USERNAME:-}" ]; then
  : "${MLFLOW_API_PASSWORD:?MLFLOW_API_PASSWORD is required with MLFLOW_API_USERNAME}"
  printf '%s\n' "$MLFLOW_API_PASSWORD" | sprout --json mlflow serving-login "$MLFLOW_API_USERNAME"
fi
