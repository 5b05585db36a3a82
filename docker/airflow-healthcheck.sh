#!/usr/bin/env bash
# HEALTHCHECK of the sprout-airflow image: checks the Airflow component this container runs, read from the
# command line of PID 1 (the official image's `dumb-init -- /entrypoint <command>`).
set -euo pipefail
cmdline=$(tr '\0' ' ' < /proc/1/cmdline)
case "$cmdline" in
  *api-server*) exec curl -fsS --max-time 10 "http://localhost:${AIRFLOW__API__PORT:-8080}/api/v2/monitor/health" ;;
  *scheduler*) exec airflow jobs check --job-type SchedulerJob --local ;;
  *dag-processor*) exec airflow jobs check --job-type DagProcessorJob --local ;;
  *triggerer*) exec airflow jobs check --job-type TriggererJob --local ;;
  *) exit 0 ;;  # a one-off command (db migrate, dags list...): nothing long-running to check
esac
