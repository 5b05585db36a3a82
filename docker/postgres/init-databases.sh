#!/bin/bash
# PostgreSQL first-start hook (/docker-entrypoint-initdb.d, run once on an empty data directory by the official
# postgres image): one role and one database each for Sprout, MLflow and Airflow, passwords from the environment.
# Used by docker-compose.yml and, through a symlink, by the Helm chart's bundled PostgreSQL.
set -euo pipefail
for app in sprout mlflow airflow; do
  var="$(echo "$app" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  password="${!var:?$var is not set}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       --set=role="$app" --set=password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
done
