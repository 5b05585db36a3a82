"""The test clusters' database drop survives an autovacuum worker on the database being dropped."""
from __future__ import annotations

import time

import pytest

from tests.servers import postgres

pytestmark = pytest.mark.server


def test_a_database_with_an_autovacuum_worker_on_it_is_dropped(postgres_url: str) -> None:
    """PostgreSQL 15 refuses a non-superuser's DROP DATABASE ... WITH (FORCE) while an autovacuum worker
    (which runs as no role) is on the database, unless the role may signal backends; CI failed on that once."""
    name = "t_autovacuum_drop"
    url = postgres.create_database(postgres_url, name)
    admin = postgres.superuser_connection(postgres_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM SET autovacuum_naptime = 1")
            cur.execute("SELECT pg_reload_conf()")
        conn = postgres._pg_connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:  # a table that autovacuum visits at once and vacuums slowly
            cur.execute("CREATE TABLE t (x int) WITH (autovacuum_vacuum_threshold = 0, "
                        "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100, "
                        "autovacuum_vacuum_cost_limit = 1)")
            cur.execute("INSERT INTO t SELECT generate_series(1, 200000)")
            cur.execute("DELETE FROM t")
        conn.close()
        deadline = time.monotonic() + 30
        with admin.cursor() as cur:
            while True:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                            "AND backend_type = 'autovacuum worker'", (name,))
                if cur.fetchone()[0]:
                    break
                assert time.monotonic() < deadline, "no autovacuum worker came"
                time.sleep(0.2)
        postgres.drop_database(postgres_url, name)
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            assert cur.fetchone()[0] == 0
    finally:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET autovacuum_naptime")
            cur.execute("SELECT pg_reload_conf()")
        admin.close()
