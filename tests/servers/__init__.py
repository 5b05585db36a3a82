"""Real servers for the tests, one module each: PostgreSQL (``postgres``), SeaweedFS S3 (``seaweedfs``), an MLflow
tracking server (``mlflow``), Airflow (``airflow``) and Redis (``redis``); what they share is in ``processes``.

Plain context managers, usable from pytest fixtures (tests/conftest.py) or from scripts::

    with postgres_server() as pg_url, seaweedfs_server() as s3:
        mlflow_db = create_database(pg_url, "mlflow")
        with mlflow_server(mlflow_db, s3) as mlflow:  # mlflow.uri, mlflow.client_env
            ...

Every server binds to 127.0.0.1 on free ports, keeps its data and its log files in a fresh temporary
directory, and is stopped (whole process group) and deleted on exit. A start that fails raises
``ServerStartError`` with the tail of the server's log; a missing binary is an error, never a skip. A test
that starts one must be marked ``server`` (tests/utils/markers.py): in any other test the start fails.
"""

from tests.servers.airflow import AirflowServer, airflow_standalone
from tests.servers.mlflow import MlflowServer, find_mlflow, mlflow_server
from tests.servers.postgres import (
    create_database,
    drop_database,
    find_pg_bin,
    postgres_server,
    postgres_stopped,
)
from tests.servers.processes import HOST, ServerStartError, free_port
from tests.servers.redis import find_redis, redis_server
from tests.servers.seaweedfs import S3Server, find_weed, seaweedfs_server, seaweedfs_stopped

__all__ = [
    "HOST", "AirflowServer", "MlflowServer", "S3Server", "ServerStartError", "airflow_standalone",
    "create_database", "drop_database", "find_mlflow", "find_pg_bin", "find_redis", "find_weed", "free_port",
    "mlflow_server", "postgres_server", "postgres_stopped", "redis_server", "seaweedfs_server", "seaweedfs_stopped",
]
