#!/bin/sh
# One-shot set-up of a Sprout deployment (docker compose `sprout-init`, Helm's init Job): apply the database
# migrations and create the first reviewer (an admin) from SPROUT_REVIEWER_USERNAME / SPROUT_REVIEWER_PASSWORD.
# Idempotent: an existing reviewer is kept as it is (its password is not changed).
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
