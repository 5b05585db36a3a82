#!/usr/bin/env bash
# Airflow on one machine (`make up`, the tests): its four components as `airflow standalone` runs them, but with
# the configured auth manager (standalone forces Airflow's plain simple auth manager over Sprout's own,
# airflow_plugins/sprout_auth_manager.py). Migrates the metadata database, then runs the scheduler, the
# dag-processor and the triggerer in the background and the api-server in the foreground, all in the caller's
# process group: stopping the group (`make down`) stops them all. Settings come from the environment
# (AIRFLOW_HOME, AIRFLOW__*: scripts/up.sh, tests/servers/airflow.py); `airflow` is the one on PATH.
# --skip-serve-logs: the scheduler's and triggerer's log servers bind every interface (their host is hard-coded,
# ports 8793/8794); on one machine the api-server reads the task logs from the local log folder instead.
set -euo pipefail
airflow db migrate
airflow scheduler --skip-serve-logs &
airflow dag-processor &
airflow triggerer --skip-serve-logs &
exec airflow api-server
